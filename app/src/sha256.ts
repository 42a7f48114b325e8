import { hash } from "node:crypto";

/**
 * Hex sha256 of a string's UTF-8 bytes. One `crypto.hash` call (Node 20.12+) instead of a `createHash` object per use:
 * about 0.25 us against 0.9 us on a short key here, and a cache hit hashes its API key and its question.
 */
export const sha256 = (text: string): string => hash("sha256", text, "hex");
