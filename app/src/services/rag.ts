import { z } from "@hono/zod-openapi";
import type { Config } from "../config.ts";
import { beforeAbort, type Deadline } from "../deadline.ts";
import { AppError, requestTimeoutMessage } from "../errors.ts";
import { timeOrderedId } from "../ids.ts";
import type { Metrics } from "../metrics.ts";
import { sha256 } from "../sha256.ts";
import { createAnswerCache } from "./answer-cache.ts";
import { createAnswerSlots, type Slot } from "./answer-slots.ts";
import { type Cache, type CacheRead, parseEntry } from "./cache.ts";
import type { CorpusVersion } from "./corpus.ts";
import { compressContextWindow, estimateTokens, sourceEntry, sourceTokenBudget, systemPrompt } from "./context.ts";
import { createGenerations, type Generation } from "./generations.ts";
import { type ChatMessage, type ChatResult, ContextOverflow, EmbedInputTooLong, type OllamaService } from "./ollama.ts";
import { type ChunkHit, type MetadataFilter, type QdrantService, VectorSizeMismatch } from "./qdrant.ts";
import { classifyQuery, modelFor, type QueryType } from "./router.ts";
import { createSessionOwners } from "./session-owners.ts";
import { sourceSetOf } from "./source-sets.ts";
import type { Source, Store } from "./store.ts";
import type { VectorFit } from "./vector-fit.ts";

export const AGENT_NAME = "rag";

export interface QueryInput {
  query: string;
  session_id?: string | undefined;
  filter?: MetadataFilter | undefined;
  top_k?: number | undefined;
  /** The model's answer is streamed token by token (and so passed on to every request following it). */
  stream?: boolean | undefined;
}

export interface QueryResult {
  answer: string;
  sources: Source[];
  session_id: string;
  request_id: string;
  model: string;
  usage: { prompt_tokens: number; completion_tokens: number };
  cached: boolean;
  /** The answer was cut before the model ended it (ChatResult.truncated). */
  truncated: boolean;
}

/**
 * The response's JSON. Its sources, most of a cache hit's bytes, are serialized once per source list (source-sets.ts)
 * instead of once per request; retrieved text is already storable (qdrant.ts), so their stored JSON is the same JSON.
 */
export function resultJson({ sources, ...rest }: QueryResult): string {
  return `${JSON.stringify(rest).slice(0, -1)},"sources":${sourceSetOf(sources).json}}`;
}

/** A query whose retrieval is done (or whose answer came from the cache), ready to be answered. */
export interface PreparedQuery {
  requestId: string;
  sessionId: string;
  owner: string;
  question: string;
  queryType: QueryType;
  model: string;
  sources: Source[];
  /** The question as asked, filter, model, top_k, collection and answer settings, hashed. */
  questionKey: string;
  /** `questionKey` under the corpus version, so an ingest or delete makes every older entry unreachable. */
  cacheKey: string;
  /** Set once retrieval ran: the hash of the model, context and question (see answer-cache.ts). */
  prompt?: string;
  /**
   * False when retrieval found no collection (lost, or not yet restored): the answer is not cached under this
   * question, as the collection's chunks may come back without a corpus version bump (a snapshot restore).
   */
  cacheable: boolean;
  /** Where the answer comes from: a cache, or a generation this request started (`leader`) or follows. */
  answer: { cached: string; truncated: boolean } | { generation: Generation; leader: boolean };
  startedAt: number;
  stopTimer: () => void;
}

/** A cached answer as a prepared query carries it (entries written before `truncated` existed were not cut). */
const cachedAnswer = (entry: { answer: string; truncated?: boolean }) => ({
  cached: entry.answer,
  truncated: entry.truncated === true,
});

/**
 * Whether an answer may be cached for the next repeat: not a loop the repeat guard stopped, and not empty (a model
 * that ended at once, or put its whole reply in a field other than the answer): cached, it was served for
 * RESPONSE_CACHE_TTL_SECONDS as a good answer, without a model call.
 */
const reusable = (chat: ChatResult): boolean => !chat.looped && chat.content.trim() !== "";

/** Whether the answer costs this request no model call (`cached` in the response). */
export const isCached = (p: PreparedQuery): boolean => !("generation" in p.answer && p.answer.leader);

/**
 * The sources of the prompt the answer comes from. A generation may ask the model with fewer than were retrieved
 * (see `askWithin`); its sources are final once its first token came or it settled.
 */
export const sourcesOf = (p: PreparedQuery): Source[] => ("generation" in p.answer ? p.answer.generation.sources : p.sources);

/** A question that leaves no room in the model's window for any source (`size`: "about N tokens, " when estimated). */
const questionTooLong = (size = "", window = "the model's window beside the instructions and the answer") =>
  new AppError("query_too_long", `invalid body: query: ${size}too long for ${window}: shorten it`);

/**
 * A question as the model is asked it and as it is keyed: only canonical Unicode equivalence (NFC), line endings and its
 * ends are folded. Case and compatibility forms (NFKC) were folded in the key, and the answer to "ls -a", "1 Mb" or
 * "x²" was served for "ls -A", "1 MB" or "x2". Spacing inside it was folded in the key only: a question padded
 * with no-break spaces, which spend the source budget, had its answer without sources served for the plain question to
 * every key, and indentation, tabs and doubled spaces change code and YAML (probe BY).
 */
export const normalizeQuery = (query: string) => query.normalize("NFC").replace(/\r\n?/g, "\n").trim();

const byText = (a: string | number | boolean, b: string | number | boolean) => {
  const [x, y] = [String(a), String(b)];
  return x < y ? -1 : x > y ? 1 : 0;
};

/**
 * Same filter, same key: object keys and list members are sorted. Members keep their type: Qdrant matches `[1]` and
 * `["1"]` against different values, and both had one key (an answer retrieved for one was served for the other).
 */
export function canonicalFilter(filter: MetadataFilter | undefined): string {
  const entries = Object.entries(filter ?? {})
    .map(([k, v]) => [k, Array.isArray(v) ? [...v].sort(byText) : v] as const)
    .sort(([a], [b]) => byText(a, b));
  return JSON.stringify(entries);
}

/** A cached query vector; an entry that is not one is embedded again. */
const VectorSchema = z.array(z.number()).min(1);

export interface RagDeps {
  config: Config;
  store: Store;
  cache: Cache;
  corpus: CorpusVersion;
  ollama: OllamaService;
  qdrant: QdrantService;
  vectorFit: Pick<VectorFit, "refused">;
  metrics: Metrics;
}

export function createRag({ config, store, cache, corpus, ollama, qdrant, vectorFit, metrics }: RagDeps) {
  const models = { small: config.MODEL_SMALL, default: config.MODEL_DEFAULT, large: config.MODEL_LARGE };
  const modelWindow = { contextTokens: config.MODEL_CONTEXT_TOKENS, answerTokens: config.MAX_ANSWER_TOKENS };

  /**
   * Part of every answer's key: replicas searching another collection, or with another embedding model, share Redis in
   * a rolling deploy that changes them, and one served the other's answers, with a document it had deleted.
   */
  const retrievedFrom = `${config.QDRANT_COLLECTION}/${config.EMBED_MODEL}`;
  /**
   * Part of every answer's key and prompt: the settings that shape an answer to the same prompt. In a rolling deploy
   * that changed MAX_ANSWER_TOKENS, answers a replica at 64 cut were served as whole by one at 1,024 (probe BY).
   */
  const askedWith = `${config.MAX_ANSWER_TOKENS}/${config.MODEL_CONTEXT_TOKENS}/${config.CONTEXT_TOKEN_BUDGET}`;

  const embeddingKey = (text: string) => `embedding:${config.EMBED_MODEL}:${sha256(text)}`;

  /** The cached vector as stored (JSON), read alongside the answer and counted and parsed only if needed. */
  const cachedEmbedding = (key: string) => cache.read("embedding", async (c) => (await c.get(key)) ?? undefined);

  /** Embeddings being computed, by cache key: questions sent together share one model call (and its error). */
  const embedding = new Map<string, Promise<number[]>>();

  /**
   * The question embedded whole: Ollama embeds only the head of a text longer than the embedding model's window unless
   * told not to, and a question after a pasted dump (4,000 hex characters) was retrieved by the dump alone, silently.
   */
  function embedQuery(text: string, key: string): Promise<number[]> {
    let vector = embedding.get(key);
    if (!vector) {
      vector = ollama
        .embed([text], { whole: true })
        .then(([v]) => v!)
        .catch((err: unknown) => {
          if (err instanceof EmbedInputTooLong) throw questionTooLong("", "the embedding model's window");
          throw err;
        })
        .finally(() => embedding.delete(key));
      embedding.set(key, vector);
    }
    return vector;
  }

  /**
   * Cached once Qdrant has searched with it: a vector of another size (a model of another dimension loaded under the
   * embedding model's name) is refused there, and cached before that it failed the question for its whole TTL.
   */
  const rememberEmbedding = (key: string, vector: number[]) =>
    cache.write("embedding", (c) => c.set(key, JSON.stringify(vector), { EX: config.EMBED_CACHE_TTL_SECONDS }));

  /**
   * The nearest chunks, searched with the cached vector or one embedded now, which is cached once Qdrant took it; null
   * when there is no collection (Qdrant never checked the vector's size then). A cached vector Qdrant refuses for its
   * size came from another model under the embedding model's name (EMBED_MODEL's model pulled again, or set back over a
   * collection rebuilt for a new one): it is dropped and the question embedded again. Kept, it failed the question
   * with a 502 for EMBED_CACHE_TTL_SECONDS.
   */
  async function retrieve(
    question: string,
    vectorKey: string,
    cached: number[] | undefined,
    filter: MetadataFilter | undefined,
    topK: number,
  ): Promise<ChunkHit[] | null> {
    if (cached) {
      try {
        return await qdrant.search(cached, filter, topK);
      } catch (err) {
        if (!(err instanceof VectorSizeMismatch)) throw err;
        cache.write("embedding", (c) => c.del(vectorKey));
      }
    }
    const vector = await embedQuery(question, vectorKey);
    try {
      const hits = await qdrant.search(vector, filter, topK);
      if (hits !== null) rememberEmbedding(vectorKey, vector);
      return hits;
    } catch (err) {
      if (err instanceof VectorSizeMismatch) vectorFit.refused(err);
      throw err;
    }
  }

  const answers = createAnswerCache(cache, {
    ttlSeconds: config.RESPONSE_CACHE_TTL_SECONDS,
    localEntries: config.RESPONSE_LOCAL_CACHE_ENTRIES,
    localTtlSeconds: config.RESPONSE_LOCAL_CACHE_TTL_SECONDS,
  });

  const generations = createGenerations();
  const sessionOwners = createSessionOwners(store);
  const slots = createAnswerSlots({ slots: config.OLLAMA_MAX_ANSWERS, maxWaitMs: config.OLLAMA_SLOT_WAIT_MS });
  /** The request's own 504 (middleware/deadline.ts says the same), for a question that would wait past it. */
  const requestTimedOut = () => new AppError("request_timeout", requestTimeoutMessage(config.REQUEST_TIMEOUT_MS));
  /** The request's 504 at `at` (its deadlineAt), as answer slots and the turn writer take it. */
  const requestDeadline = (at: number | undefined): Deadline | undefined =>
    at === undefined ? undefined : { at, passed: requestTimedOut };

  /** A question refused for what the client sent (another key's session): no failure of the pipeline, and no query. */
  const refused = (err: unknown) => err instanceof AppError && err.status < 500;

  const clientClosed = () => new AppError("client_closed", "the client closed the request: turn not stored");

  function countError(err: unknown): void {
    if (refused(err)) return;
    metrics.agentErrors.inc({ agent_name: AGENT_NAME, error_type: err instanceof AppError ? err.type : "internal" });
  }

  /**
   * Cache lookup, then embedding, vector search and context trimming. Throws before anything is streamed.
   * `requestEnded` aborts once the request was answered without this question: its client left, or the shutdown
   * notice answered it (an error after that is no agent error). A getter, read only if the question has to wait for an
   * answer slot: @hono/node-server creates the request's AbortController on first read, about 7 us in Node 20, which a
   * cache hit need not pay. `deadlineAt`: the request's 504 (performance.now() ms), which no wait for a slot outlasts.
   */
  async function prepare(
    input: QueryInput,
    owner: string,
    requestId: string,
    requestEnded?: () => AbortSignal,
    deadlineAt?: number,
  ): Promise<PreparedQuery> {
    const startedAt = performance.now();
    const question = normalizeQuery(input.query);
    const sourceRoom = sourceTokenBudget(modelWindow, question);
    if (sourceRoom <= 0) throw questionTooLong(`about ${estimateTokens(question)} tokens, `);
    const queryType = classifyQuery(question);
    const model = modelFor(queryType, models);
    const topK = input.top_k ?? config.DEFAULT_TOP_K;
    const streamed = input.stream === true;
    const questionKey = sha256(JSON.stringify([question, canonicalFilter(input.filter), model, topK, retrievedFrom, askedWith]));
    const version = corpus.current();
    // Unknown while this replica may have missed another's write (corpus.ts): a key of this request's own, so no answer
    // cached or being generated under the version is taken, and none is cached under it.
    const cacheKey = version === undefined ? `response:unsure:${requestId}` : `response:${version}:${questionKey}`;
    metrics.activeQueries.inc();
    const stopTimer = metrics.agentDuration.startTimer({ agent_name: AGENT_NAME, query_type: queryType });
    const sessionId = input.session_id ?? timeOrderedId();
    // Every prepared query is built here, in one shape: a shared base spread with a different set of fields at each
    // return gave the objects several hidden classes, and the reads in `complete` went megamorphic (V8 IC misses).
    const ready = (sources: Source[], answer: PreparedQuery["answer"], prompt?: string, cacheable = true): PreparedQuery => ({
      requestId,
      sessionId,
      owner,
      question,
      queryType,
      model,
      sources,
      questionKey,
      cacheKey,
      prompt,
      cacheable,
      answer,
      startedAt,
      stopTimer,
    });
    // Counted once per question looked up, under "response": a hit when the answer came from a cache at any step.
    let answered: CacheRead<unknown>["result"] | undefined;
    try {
      if (input.session_id !== undefined) await sessionOwners.check(input.session_id, owner);
      const held = answers.held(cacheKey);
      if (held) {
        answered = "hit";
        return ready(held.sources, cachedAnswer(held));
      }
      const running = generations.find(cacheKey, streamed);
      if (running) {
        answered = "hit";
        return ready(running.sources, { generation: running, leader: false });
      }
      // All three lookups in one Redis round trip: on a miss the embedding and the latest answer are needed next.
      const vectorKey = embeddingKey(question);
      const [found, cachedVector, latest] = await Promise.all([
        answers.fetch(cacheKey),
        cachedEmbedding(vectorKey),
        answers.latest(questionKey),
      ]);
      answered = found.result;
      if (found.value) return ready(found.value.sources, cachedAnswer(found.value));
      await store.confirmReachable();
      const cached = cachedVector.value === undefined ? undefined : parseEntry(VectorSchema, cachedVector.value);
      cache.count("embedding", cachedVector.value !== undefined && !cached ? "error" : cachedVector.result);
      const retrieved = await retrieve(question, vectorKey, cached, input.filter, topK);
      const cacheable = retrieved !== null && version !== undefined;
      const hits = retrieved ?? [];
      const budget = Math.min(config.CONTEXT_TOKEN_BUDGET, sourceRoom);
      const chunks = compressContextWindow(hits, budget, (h, i) => estimateTokens(`${sourceEntry(h, i)}\n\n`));
      const sources = chunks.map((h) => ({ id: h.documentId, score: h.score, title: h.title, text: h.text }));
      const system = systemPrompt(sources);
      // With the sources' ids: an answer followed or reused by its prompt is given with the sources it was asked from,
      // and two documents of the same title and text (a copy, a rename done as ingest then delete) make one prompt.
      const prompt = sha256(JSON.stringify([model, system, question, sources.map((s) => s.id), askedWith]));
      if (latest.value?.prompt === prompt) {
        answered = "hit";
        const shown = sources.slice(0, latest.value.shown ?? sources.length);
        return ready(shown, cachedAnswer(latest.value), prompt, cacheable);
      }
      // Another question (another filter, say) that retrieved the same context is the same prompt: its answer too. The
      // same question may also have started while this one retrieved.
      const same = generations.find(prompt, streamed) ?? generations.find(cacheKey, streamed);
      if (same) {
        answered = "hit";
        return ready(sources, { generation: same, leader: false }, prompt, cacheable);
      }
      const slot = await acquireOrFollow(model, owner, [cacheKey, prompt], streamed, requestEnded, deadlineAt);
      if ("generation" in slot) {
        answered = "hit";
        return ready(sources, { generation: slot.generation, leader: false }, prompt, cacheable);
      }
      // While this request waited for a slot, the same question may have been answered.
      const meanwhile = slot.waited && answers.held(cacheKey);
      if (meanwhile) {
        slot.unused();
        answered = "hit";
        return ready(meanwhile.sources, cachedAnswer(meanwhile), prompt, cacheable);
      }
      // Streamed for a JSON question too when a stream waits to follow it (generations.ts).
      const streaming = streamed || generations.streamWaiting([cacheKey, prompt]);
      const generation = generations.start(sources, [cacheKey, prompt], streaming, async (push, narrow) => {
        try {
          const { chat, shown } = await askWithin(sources, system, question, narrow, (messages) =>
            streaming ? streamAnswer(model, messages, push) : ollama.chat(model, messages),
          );
          // Once per model call, here and not by the request that started it: that request may have been let go (its
          // client left, the server stopped) while the model went on, and its tokens went uncounted (review N24).
          metrics.agentTokens.observe({ agent_name: AGENT_NAME, model }, chat.promptTokens + chat.completionTokens);
          if (!cacheable || !reusable(chat)) return chat;
          // Cached before the generation settles, so a request arriving between the two finds one or the other.
          const narrowed = shown.length < sources.length ? shown.length : undefined;
          const entry = { answer: chat.content, sources: shown, truncated: chat.truncated };
          answers.set(cacheKey, entry, { questionKey, prompt, shown: narrowed });
          return chat;
        } finally {
          slot.release();
        }
      });
      return ready(sources, { generation, leader: true }, prompt, cacheable);
    } catch (err) {
      if (!requestEnded?.().aborted) countError(err); // a client that left is no error of ours (a 499), nor a 503 told
      if (!refused(err)) stopTimer();
      metrics.activeQueries.dec();
      throw err;
    } finally {
      if (answered) cache.count("response", answered);
    }
  }

  /**
   * An answer slot, or the generation of the same question or prompt (`keys`) that started while this question waited
   * for one: it follows that answer from then on, instead of waiting for a slot of its own until a 503. A slot granted
   * in the same turn as such a start is given back unused.
   */
  async function acquireOrFollow(
    model: string,
    owner: string,
    keys: string[],
    streamed: boolean,
    requestEnded?: () => AbortSignal,
    deadlineAt?: number,
  ): Promise<Slot | { generation: Generation }> {
    let started: Generation | undefined;
    let unwatch = () => {};
    const follow = new AbortController();
    // Read by the lane only when the question has to wait: a question given a slot at once watches nothing.
    const waitSignal = () => {
      unwatch = generations.watch(keys, streamed, (generation) => {
        started ??= generation;
        follow.abort();
      });
      const client = requestEnded?.();
      return client ? AbortSignal.any([client, follow.signal]) : follow.signal;
    };
    try {
      const slot = await slots.acquire(model, owner, waitSignal, requestDeadline(deadlineAt));
      if (!started) return slot;
      slot.unused();
      return { generation: started };
    } catch (err) {
      if (started) return { generation: started };
      throw err;
    } finally {
      unwatch();
    }
  }

  /**
   * Asks the model with `system`, the system prompt of `sources`. Sent with `truncate: false`, a prompt longer than the window
   * is refused by Ollama (ContextOverflow) rather than answered without its sources; this happens when the text
   * takes more tokens than context.ts estimates (hex, base64, Han in some tokenizers). It then asks again with the
   * better-ranked half of the sources, down to none: the refusal comes before any token, so nothing was streamed.
   */
  async function askWithin(
    sources: Source[],
    system: string,
    question: string,
    narrow: (shown: Source[]) => void,
    ask: (messages: ChatMessage[]) => Promise<ChatResult>,
  ): Promise<{ chat: ChatResult; shown: Source[] }> {
    for (let shown = sources; ; shown = shown.slice(0, Math.floor(shown.length / 2))) {
      narrow(shown);
      try {
        const chat = await ask([
          { role: "system", content: shown === sources ? system : systemPrompt(shown) },
          { role: "user", content: question },
        ]);
        return { chat, shown };
      } catch (err) {
        if (!(err instanceof ContextOverflow)) throw err;
        if (shown.length === 0) throw questionTooLong();
      }
    }
  }

  /** The model's answer token by token, each passed to `push`; its end carries the token counts. */
  async function streamAnswer(model: string, messages: ChatMessage[], push: (token: string) => void): Promise<ChatResult> {
    const tokens = ollama.chatStream(model, messages);
    let next = await tokens.next();
    while (!next.done) {
      push(next.value);
      next = await tokens.next();
    }
    return next.value;
  }

  /**
   * Answers from the cache or a generation (token by token when `onToken` is given), stores the turn, then returns.
   * Once `until` aborts (the server ending a stream), it stops waiting for the answer and throws the signal's reason,
   * and stores no turn: its client is told to ask again, and a turn stored anyway would be there twice. A turn already
   * being written is waited for. A turn not committed by `storeBy` (the request's 504, performance.now() ms) is not
   * stored either (the turn writer drops it, or takes it back), nor once `clientLeft()` says the client closed the
   * request: a client that gave up and asks again has its question in its session once (probe BB: a turn was stored
   * for each request counted 499).
   */
  async function complete(
    p: PreparedQuery,
    {
      onToken,
      until,
      storeBy,
      clientLeft,
    }: { onToken?: (token: string) => Promise<void>; until?: AbortSignal; storeBy?: number; clientLeft?: () => boolean } = {},
  ): Promise<QueryResult> {
    const unlessEnded = <T>(step: Promise<T>): Promise<T> =>
      until ? beforeAbort(step, until, () => until.reason as Error) : step;
    /**
     * Ends this question once its request was answered without it: its client left (no turn is stored) or its 504 was
     * sent. A generation it follows goes on apart, and caches its answer.
     */
    const letGoIfAnswered = () => {
      if (clientLeft?.()) throw clientClosed();
      if (storeBy !== undefined && performance.now() >= storeBy) throw requestTimedOut();
    };
    try {
      let chat: ChatResult;
      const { answer } = p;
      if ("cached" in answer) {
        chat = { content: answer.cached, promptTokens: 0, completionTokens: 0, truncated: answer.truncated, looped: false };
        if (onToken) await unlessEnded(onToken(answer.cached));
      } else {
        const tokens = answer.generation.follow();
        let next = await unlessEnded(tokens.next());
        while (!next.done) {
          // Followed to its end, a long answer held the query (active_queries) as long (probes CH, CK).
          letGoIfAnswered();
          if (onToken) await unlessEnded(onToken(next.value));
          next = await unlessEnded(tokens.next());
        }
        chat = answer.leader ? next.value : { ...next.value, promptTokens: 0, completionTokens: 0 };
      }
      const cached = isCached(p);
      const sources = sourcesOf(p);
      // An answer found by its prompt is stored again under this corpus version, for the next repeat. Not one from a
      // generation asked with another prompt, followed by the question's cache key: its own request cached it or not
      // (one asked while the collection was missing, without sources, was cached here for good measure).
      if (
        cached &&
        p.prompt &&
        p.cacheable &&
        reusable(chat) &&
        ("cached" in answer || answer.generation.keys.includes(p.prompt))
      )
        answers.set(p.cacheKey, { answer: chat.content, sources, truncated: chat.truncated });

      const result: QueryResult = {
        answer: chat.content,
        sources,
        session_id: p.sessionId,
        request_id: p.requestId,
        model: p.model,
        usage: { prompt_tokens: chat.promptTokens, completion_tokens: chat.completionTokens },
        cached,
        truncated: chat.truncated,
      };
      until?.throwIfAborted();
      letGoIfAnswered();
      await store.recordTurn(
        p.owner,
        {
          request_id: p.requestId,
          session_id: p.sessionId,
          question: p.question,
          answer: result.answer,
          sources: result.sources,
          model: p.model,
          prompt_tokens: chat.promptTokens,
          completion_tokens: chat.completionTokens,
          latency_ms: Math.round(performance.now() - p.startedAt),
          cached,
          truncated: chat.truncated,
        },
        requestDeadline(storeBy),
      );
      metrics.agentQueries.inc({ agent_name: AGENT_NAME, model: p.model, cached: cached ? "true" : "false" });
      return result;
    } catch (err) {
      // A client that left is no error of ours (a 499), whatever ended the answer after it: a model failing under N
      // followers that had left was N agent errors, and no 5xx (probe CH).
      if (err !== until?.reason && !clientLeft?.()) countError(err);
      throw err;
    } finally {
      p.stopTimer();
      metrics.activeQueries.dec();
    }
  }

  /**
   * Lets go of a prepared query that will not be completed (its request was answered meanwhile). A generation it
   * started goes on for whoever follows it, and caches its answer.
   */
  const discard = (): void => {
    metrics.activeQueries.dec();
  };

  /**
   * Lets go of a prepared query whose request was answered 504 meanwhile, counted and timed as `complete` counts a
   * JSON question past its deadline; the 504 to throw.
   */
  const timedOut = (p: PreparedQuery): AppError => {
    const err = requestTimedOut();
    countError(err);
    p.stopTimer();
    discard();
    return err;
  };

  return { prepare, complete, discard, timedOut, resizeAnswerSlots: slots.resize };
}

export type Rag = ReturnType<typeof createRag>;
