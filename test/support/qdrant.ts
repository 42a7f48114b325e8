import { createLogger } from "../../app/src/log.ts";
import { createMetrics } from "../../app/src/metrics.ts";
import { type ChunkPoint, createQdrant, type QdrantOptions, type QdrantService } from "../../app/src/services/qdrant.ts";

/** The app's Qdrant service on `url` (a fake, or a proxy in front of one), with the app's defaults. */
export const qdrantAt = (url: string, collection: string, opts: Partial<QdrantOptions> = {}) =>
  createQdrant({
    url,
    collection,
    replicationFactor: 1,
    writeConsistencyFactor: 1,
    timeoutMs: 5_000,
    metadataIndexLimit: 16,
    metrics: createMetrics(),
    log: createLogger("silent"),
    ...opts,
  });

/** Writes the points as an ingest does: upserted as one write's (pending), then their documents published. */
export async function putChunks(qdrant: QdrantService, points: ChunkPoint[], generation = 1): Promise<void> {
  await qdrant.upsert(points, generation);
  await qdrant.publish([...new Set(points.map((p) => p.documentId))], generation);
}
