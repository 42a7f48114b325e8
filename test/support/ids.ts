const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The Unix time in ms an RFC 9562 UUIDv7 carries in its first 48 bits; throws for any other string. */
export function uuidV7Time(id: string): number {
  if (!UUID_V7.test(id)) throw new Error(`not a UUIDv7: ${id}`);
  return Number.parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}
