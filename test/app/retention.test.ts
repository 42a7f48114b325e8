import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import postgres from "postgres";
import { Gauge, Registry } from "prom-client";
import { migrate } from "../../app/src/services/migrations.ts";
import { PRUNE_LOCK, pruneTurns, startTurnRetention } from "../../app/src/services/turn-retention.ts";
import { createSourceSets, KNOWN_FOR_MS, type Source, sourceSetOf } from "../../app/src/services/source-sets.ts";
import { createTurnWriter, type Turn } from "../../app/src/services/turns.ts";
import { MIGRATIONS_DIR } from "../../app/src/start.ts";
import { sha256 } from "../../app/src/sha256.ts";
import { OTHER_KEY, startStack, USER_KEY, type Stack } from "../support/app.ts";
import { api } from "../support/http.ts";
import { capturedLog } from "../support/log.ts";
import { createDatabase, lockWaiters } from "../support/postgres.ts";
import { waitFor } from "../support/process.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";

let stack: Stack;
/** The app's database, which its own sweeps prune every 200 ms. */
let sql: postgres.Sql;
/** Another database of the same server, migrated alike: pruned only when a test says so. */
let quiet: postgres.Sql;
let quietUrl: string;

before(async () => {
  stack = await startStack({ TURN_RETENTION_DAYS: "30", TURN_RETENTION_SWEEP_MS: "200" });
  sql = postgres(stack.pg.url, { onnotice: () => {}, max: 4 });
  quietUrl = await createDatabase(stack.pg.url, "retention_quiet");
  quiet = postgres(quietUrl, { onnotice: () => {}, max: 4 });
  await migrate(quiet, MIGRATIONS_DIR);
});
after(async () => {
  await Promise.all([sql.end(), quiet.end()]);
  await stack.stop();
});

const ageTurns = (db: postgres.Sql, requestIds: string[], days: number) =>
  db`UPDATE turns SET created_at = now() - make_interval(days => ${days}) WHERE request_id IN ${db(requestIds)}`;

const turn = (session_id: string, sources: Source[] = []): Turn => ({
  request_id: randomUUID(),
  session_id,
  question: "q",
  answer: "a",
  sources,
  model: "m",
  prompt_tokens: 0,
  completion_tokens: 0,
  latency_ms: 1,
  cached: false,
  truncated: false,
});

/** A turn 400 days old in the quiet database, written by a writer of its own (the test's writer does not know its list). */
async function oldTurn(session_id: string, sources: Source[] = []): Promise<Turn> {
  const t = turn(session_id, sources);
  await createTurnWriter(quiet, 5_000).record("owner", t);
  await ageTurns(quiet, [t.request_id], 400);
  return t;
}

/** What a turn's record came to: "stored", or the error it was refused with. */
const outcomeOf = (written: Promise<void>) =>
  written.then(
    () => "stored",
    (err) => String(err),
  );

/** A source list of its own: its own hash. */
const sourcesOf = (name: string): Source[] => [{ id: name, score: 0.5, title: null, text: `text of ${name}` }];

/** A turn's sources as the session API reads them (store.ts sessionTurns): [] when its source list is gone. */
async function storedSources(requestId: string): Promise<Source[]> {
  const [row] = await quiet`
    SELECT COALESCE(s.sources, t.sources) AS sources FROM turns t LEFT JOIN source_sets s ON s.hash = t.sources_hash
    WHERE t.request_id = ${requestId}`;
  return row!.sources;
}

/** Two connections to the quiet database whose deadlocks Postgres finds only after `ms`. */
const quietDetectingDeadlocksAfter = (ms: number) =>
  postgres(quietUrl, { onnotice: () => {}, max: 2, connection: { deadlock_timeout: ms } });

/** Waits until `n` backends of the quiet database wait on a lock. */
const waitersOnLocks = (n = 1) =>
  waitFor(`${n} statements waiting on a lock`, async () => (await lockWaiters(sql, { database: "retention_quiet" })) >= n);

test("turns past TURN_RETENTION_DAYS are deleted with their feedback, and sessions left empty with them", async () => {
  const user = api(stack.url, USER_KEY);
  const ask = async (query: string, session_id?: string) => {
    const res = await user.post<{ request_id: string; session_id: string }>("/api/v1/query", { query, session_id });
    assert.equal(res.status, 200, res.text);
    return res.body;
  };
  const old = await ask("What causes the tides?");
  const kept = await ask("And the seasons?", old.session_id);
  const lone = await ask("Why is the sky blue?");
  const recent = await ask("What is a neap tide?");
  const feedback = await user.post("/api/v1/feedback", { request_id: old.request_id, quality_score: 4 });
  assert.equal(feedback.status, 201, feedback.text);

  await ageTurns(sql, [old.request_id, lone.request_id], 31);
  await ageTurns(sql, [recent.request_id], 29);

  await waitFor("the old turns deleted", async () => {
    const [row] = await sql`SELECT count(*)::int AS n FROM turns WHERE request_id IN ${sql([old.request_id, lone.request_id])}`;
    return row!.n === 0;
  });
  const history = await user.get<{ turns: Array<{ request_id: string }> }>(`/api/v1/sessions/${old.session_id}`);
  assert.equal(history.status, 200, history.text);
  assert.deepEqual(
    history.body.turns.map((t) => t.request_id),
    [kept.request_id],
    "the session keeps its recent turn",
  );
  assert.equal((await user.get(`/api/v1/sessions/${lone.session_id}`)).status, 404, "its only turn gone, so is it");
  assert.equal((await user.get(`/api/v1/sessions/${recent.session_id}`)).status, 200, "29 days old: kept");
  const [fb] = await sql`SELECT count(*)::int AS n FROM feedback WHERE request_id = ${old.request_id}`;
  assert.equal(fb!.n, 0);
});

test("a turn committed into a session while its last old turn is pruned is kept, session and all", async () => {
  const session = randomUUID();
  await oldTurn(session);

  // A turn being written into the session: its foreign key check holds a KEY SHARE lock on the session row.
  const newTurn = turn(session);
  const reserved = await quiet.reserve();
  try {
    await reserved`BEGIN`;
    await reserved`
      INSERT INTO turns (request_id, session_id, question, answer, model, latency_ms)
      VALUES (${newTurn.request_id}, ${session}, 'q', 'a', 'm', 1)`;
    const pruning = pruneTurns(quiet, 365);
    await waitersOnLocks();
    await reserved`COMMIT`;
    const pruned = await pruning;
    assert.equal(pruned.skipped, false);
    assert.ok(pruned.turns >= 1);
  } finally {
    reserved.release();
  }
  const rows = await quiet`SELECT request_id FROM turns WHERE session_id = ${session}`;
  assert.deepEqual(
    rows.map((r) => r.request_id),
    [newTurn.request_id],
    "the old turn is gone; the one committed meanwhile is not",
  );
  const [owner] = await quiet`SELECT owner FROM sessions WHERE id = ${session}`;
  assert.equal(owner?.owner, "owner");
});

test("a turn whose session is deleted while it is written goes into the session created anew", async () => {
  const session = `vanishing-${randomUUID()}`;
  const writer = createTurnWriter(quiet, 5_000);
  await writer.record("owner", turn(session));

  const reserved = await quiet.reserve();
  try {
    // As the pruning does: the session locked, then deleted.
    await reserved`BEGIN`;
    await reserved`SELECT id FROM sessions WHERE id = ${session} FOR UPDATE`;
    const next = turn(session);
    const writing = writer.record("owner", next);
    await waitersOnLocks();
    await reserved`DELETE FROM sessions WHERE id = ${session}`;
    await reserved`COMMIT`;
    await writing;
    const rows = await quiet`SELECT request_id FROM turns WHERE session_id = ${session}`;
    assert.deepEqual(
      rows.map((r) => r.request_id),
      [next.request_id],
    );
  } finally {
    reserved.release();
  }
});

test("feedback on a turn deleted while it is recorded is a 404, not a 500", async () => {
  const user = api(stack.url, USER_KEY);
  const asked = await user.post("/api/v1/query", { query: "What is deleted under feedback?" });
  assert.equal(asked.status, 200, asked.text);
  const deleting = await sql.reserve();
  try {
    // Retention's delete, uncommitted: the feedback's snapshot sees the turn, and its lock on the turn waits.
    await deleting`BEGIN`;
    await deleting`DELETE FROM turns WHERE request_id = ${asked.body.request_id}`;
    const feedback = user.post("/api/v1/feedback", { request_id: asked.body.request_id, quality_score: 4 });
    await waitFor(
      "the feedback waiting on the delete",
      async () => (await lockWaiters(sql, { statement: "%record_feedback%" })) === 1,
    );
    await deleting`COMMIT`;
    const res = await feedback;
    assert.equal(res.status, 404, res.text);
  } finally {
    await deleting`ROLLBACK`.catch(() => {});
    deleting.release();
  }
});

test("a connection reset in the middle of a sweep fails that sweep, not the process, and the next sweep prunes", async () => {
  const proxy = await startTcpProxy(stack.pg.port);
  const viaProxy = new URL(quietUrl);
  viaProxy.port = String(proxy.port);
  const db = postgres(viaProxy.href, { onnotice: () => {}, max: 1 });
  const session = randomUUID();
  const old = await oldTurn(session);
  // The sweep deletes the old turn, then waits here for its session's lock: the reset comes with it still open.
  const holding = await quiet.reserve();
  try {
    await holding`BEGIN`;
    await holding`SELECT id FROM sessions WHERE id = ${session} FOR UPDATE`;
    const pruning = pruneTurns(db, 365);
    await waitersOnLocks();
    proxy.cut();
    await assert.rejects(pruning);
    // postgres.js 3.4.9 wrote its ROLLBACK on the closed connection from a setImmediate, an uncaught TypeError.
    await sleep(200);
    await holding`COMMIT`;
  } finally {
    holding.release();
  }
  try {
    proxy.restore();
    // The cut sweep's backend, waiting on the lock, notices its client gone only once it runs again: it may commit.
    await waitFor("the old turn and its session pruned", async () => {
      await pruneTurns(db, 365);
      const [left] = await quiet`
        SELECT (SELECT count(*) FROM turns WHERE request_id = ${old.request_id})::int
             + (SELECT count(*) FROM sessions WHERE id = ${session})::int AS n`;
      return left!.n === 0;
    });
  } finally {
    await db.end({ timeout: 1 });
    await proxy.close();
  }
});

test("a session deleted and taken by another key while its page is read shows none of the other key's turns", async () => {
  const user = api(stack.url, USER_KEY);
  const session = `taken-${randomUUID()}`;
  assert.equal((await user.post("/api/v1/query", { query: "What do tides follow?", session_id: session })).status, 200);
  // The page's own statement reads source_sets: held here, it waits after the session's owner was checked.
  const holding = await sql.reserve();
  try {
    await holding`BEGIN`;
    await holding`LOCK TABLE source_sets IN ACCESS EXCLUSIVE MODE`;
    const page = user.get<{ turns: Array<{ question: string }> }>(`/api/v1/sessions/${session}`);
    await waitFor("the page read waiting", async () => (await lockWaiters(sql, { statement: "%WITH page AS%" })) === 1);
    // Meanwhile the session goes (turn retention, or its owner's DELETE), and the other key asks under its id.
    await sql`DELETE FROM sessions WHERE id = ${session}`;
    await sql`INSERT INTO sessions (id, owner) VALUES (${session}, ${`key:${sha256(OTHER_KEY).slice(0, 16)}`})`;
    await sql`
      INSERT INTO turns (request_id, session_id, question, answer, model, latency_ms)
      VALUES (${randomUUID()}, ${session}, 'the other key''s question', 'the other key''s answer', 'm', 1)`;
    await holding`COMMIT`;
    const res = await page;
    assert.ok(res.status === 200 || res.status === 404, res.text);
    assert.ok(!res.text.includes("the other key"), `another key's turn served: ${res.text.slice(0, 300)}`);
  } finally {
    holding.release();
  }
});

test("one replica prunes at a time: another finds the lock taken and skips", async () => {
  const reserved = await quiet.reserve();
  try {
    await reserved`BEGIN`;
    await reserved`SELECT pg_advisory_xact_lock(${PRUNE_LOCK})`;
    assert.deepEqual(await pruneTurns(quiet, 1), { turns: 0, sessions: 0, sourceSets: 0, skipped: true });
    await reserved`COMMIT`;
  } finally {
    reserved.release();
  }
  assert.equal((await pruneTurns(quiet, 1)).skipped, false);
});

test("a source list is deleted with the last turn that refers to it, and kept while a kept turn does", async () => {
  const writer = createTurnWriter(quiet, 5_000);
  const [onlyOld, shared] = [sourcesOf(`only-old-${randomUUID()}`), sourcesOf(`shared-${randomUUID()}`)];
  await oldTurn(randomUUID(), onlyOld);
  await oldTurn(randomUUID(), shared);
  const kept = turn(randomUUID(), shared);
  await writer.record("owner", kept);

  const pruned = await pruneTurns(quiet, 365);
  assert.equal(pruned.sourceSets, 1);
  const lists =
    await quiet`SELECT sources->0->>'id' AS id FROM source_sets WHERE sources->0->>'id' IN ${quiet([onlyOld[0]!.id, shared[0]!.id])}`;
  assert.deepEqual(
    lists.map((r) => r.id),
    [shared[0]!.id],
  );
  assert.deepEqual(await storedSources(kept.request_id), shared);
});

test("a turn that sends a source list while the last old turn referring to it is pruned keeps its sources", async () => {
  const list = sourcesOf(`raced-${randomUUID()}`);
  await oldTurn(randomUUID(), list);

  // A new writer, which does not know the list is stored, writes a turn into a session the test holds locked: its
  // statement has dealt with the source list and waits at its foreign key check.
  const session = randomUUID();
  const writer = createTurnWriter(quiet, 10_000);
  await writer.record("owner", turn(session));
  const next = turn(session, list);
  const reserved = await quiet.reserve();
  let pruned: Awaited<ReturnType<typeof pruneTurns>> | undefined;
  try {
    await reserved`BEGIN`;
    await reserved`SELECT id FROM sessions WHERE id = ${session} FOR UPDATE`;
    const writing = writer.record("owner", next);
    await waitersOnLocks(1);
    const pruning = pruneTurns(quiet, 365).then((p) => (pruned = p));
    await Promise.race([pruning, waitersOnLocks(2)]);
    await reserved`ROLLBACK`;
    await Promise.all([writing, pruning]);
  } finally {
    reserved.release();
  }
  assert.equal(pruned?.turns, 1, "the old turn was pruned");
  assert.deepEqual(await storedSources(next.request_id), list, "the new turn's source list was kept");
});

test("replicas sending the same stored source lists in opposite orders do not deadlock: every turn commits", async () => {
  const [low, high] = [sourcesOf(`one-${randomUUID()}`), sourcesOf(`two-${randomUUID()}`)].sort((x, y) =>
    sourceSetOf(x).hash < sourceSetOf(y).hash ? -1 : 1,
  );
  const setup = createTurnWriter(quiet, 5_000);
  for (const list of [low!, high!]) await setup.record("owner", turn(randomUUID(), list));
  const holdHigh = await quiet.reserve();
  try {
    await holdHigh`BEGIN`;
    await holdHigh`SELECT hash FROM source_sets WHERE hash = ${sourceSetOf(high!).hash} FOR UPDATE`;
    // Two replicas (writers new to the lists), each with one batch. b's lists high then low: taken in hash order, it
    // holds low and waits for high; in its own order, it waits for high holding nothing.
    const [a, b] = [createTurnWriter(quiet, 5_000), createTurnWriter(quiet, 5_000)];
    const fromB = [b.record("owner", turn(randomUUID(), high)), b.record("owner", turn(randomUUID(), low))].map(outcomeOf);
    await waitersOnLocks(1);
    // a's lists low then high: in hash order it waits for low behind b; in its own order it takes low and waits for
    // high behind b, which then waits for low.
    const fromA = [a.record("owner", turn(randomUUID(), low)), a.record("owner", turn(randomUUID(), high))].map(outcomeOf);
    await waitersOnLocks(2);
    await holdHigh`ROLLBACK`;
    assert.deepEqual(await Promise.all([...fromB, ...fromA]), ["stored", "stored", "stored", "stored"]);
  } finally {
    holdHigh.release();
  }
});

test("a batch naming sessions out of id order while a sweep locks them does not deadlock: every turn commits", async () => {
  // A deadlock would hold both statements for deadlock_timeout, here past the writer's deadline.
  const slowDetector = quietDetectingDeadlocksAfter(3_000);
  // It knows the batch's source list as stored, so the batch locks no list: only sessions.
  const writer = createTurnWriter(slowDetector, 1_500);
  const [low, high] = [`a-${randomUUID()}`, `b-${randomUUID()}`];
  // Each left without a turn by the sweep, which locks it to delete it (a session that keeps turns it does not wait for).
  for (const session of [low, high]) await oldTurn(session);
  // Another statement's foreign key check (a turn, a feedback) holding `high` for a moment lines the steps up.
  const keyShare = await quiet.reserve();
  try {
    await keyShare`BEGIN`;
    await keyShare`SELECT 1 FROM sessions WHERE id = ${high} FOR KEY SHARE`;
    const pruning = pruneTurns(slowDetector, 365);
    await waitersOnLocks(1); // the sweep holds `low`, and waits for `high`
    const batched = [outcomeOf(writer.record("owner", turn(high))), outcomeOf(writer.record("owner", turn(low)))];
    await waitersOnLocks(2);
    await keyShare`COMMIT`;
    assert.deepEqual(await Promise.all(batched), ["stored", "stored"]);
    assert.ok((await pruning).turns >= 2);
  } finally {
    await keyShare`ROLLBACK`.catch(() => {});
    keyShare.release();
    await slowDetector.end();
  }
});

test("a failed batch's turns are written again one by one, except those already answered 503 or 504", async () => {
  // One connection: a take-back the writer starts runs before the statements it sends after it.
  const oneConnection = postgres(quietUrl, { onnotice: () => {}, max: 1 });
  const { log, lines } = capturedLog("warn");
  const writer = createTurnWriter(oneConnection, 5_000, log);
  const holdDuplicate = await quiet.reserve();
  try {
    const [duplicate, answered, good] = [turn(randomUUID()), turn(randomUUID()), turn(randomUUID())];
    // Another transaction inserts the first one's request_id, uncommitted: the batch waits for it, then fails.
    const session = randomUUID();
    await holdDuplicate`BEGIN`;
    await holdDuplicate`INSERT INTO sessions (id, owner) VALUES (${session}, 'owner')`;
    await holdDuplicate`INSERT INTO turns (request_id, session_id, question, answer, model, latency_ms)
      VALUES (${duplicate.request_id}, ${session}, 'q', 'a', 'm', 1)`;
    // The second one's request is answered 504 while the batch waits (its own 503 deadline would mark it alike).
    const deadline = { at: performance.now() + 500, passed: () => new Error("answered 504") };
    const outcomes = [
      outcomeOf(writer.record("owner", duplicate)),
      outcomeOf(writer.record("owner", answered, deadline)),
      outcomeOf(writer.record("owner", good)),
    ];
    await waitersOnLocks(1);
    assert.ok(performance.now() < deadline.at, "the batch took the turn before its deadline");
    assert.equal(await outcomes[1], "Error: answered 504", "answered while its batch waits");
    await holdDuplicate`COMMIT`;
    const [duplicateOutcome, , goodOutcome] = await Promise.all(outcomes);
    assert.match(duplicateOutcome!, /duplicate key value violates unique constraint/);
    assert.equal(goodOutcome, "stored", "a turn of the failed batch was refused for another turn's error");
    await oneConnection`SELECT 1`; // after any take-back the writer started
    assert.deepEqual(
      lines.filter((line) => line.includes("taken back")),
      [],
      "the turn answered 504 was written again, then taken back",
    );
    const stored = await quiet`SELECT request_id FROM turns WHERE request_id IN ${quiet([answered.request_id, good.request_id])}`;
    assert.deepEqual(
      stored.map((r) => r.request_id),
      [good.request_id],
    );
  } finally {
    await holdDuplicate`ROLLBACK`.catch(() => {});
    holdDuplicate.release();
    await oneConnection.end();
  }
});

test("a turn answered 503 whose statement then commits is taken back: its client's retry stores it once", async () => {
  const deadlineMs = 1_000;
  const [gate, lateGate] = [sourcesOf(`gate-${randomUUID()}`), sourcesOf(`late-${randomUUID()}`)];
  const setup = createTurnWriter(quiet, 5_000);
  await Promise.all([gate, lateGate].map((list) => setup.record("owner", turn(randomUUID(), list))));
  const writer = createTurnWriter(quiet, deadlineMs);
  const [holdGate, holdLate] = [await quiet.reserve(), await quiet.reserve()];
  const lock = async (hold: postgres.ReservedSql, list: Source[]) => {
    await hold`BEGIN`;
    await hold`SELECT hash FROM source_sets WHERE hash = ${sourceSetOf(list).hash} FOR UPDATE`;
  };
  const outcome = (t: Turn) => outcomeOf(writer.record("owner", t));
  const stored = async (t: Turn) => (await quiet`SELECT count(*)::int AS n FROM turns WHERE request_id = ${t.request_id}`)[0]!.n;
  const unavailable = `Error: postgres unavailable: no answer within ${deadlineMs} ms`;
  try {
    // 1. The statement outlives its own deadline, then commits (a lock released late, a slow disk).
    await lock(holdGate, gate);
    const pastBoth = turn(randomUUID(), gate);
    const pastBothOutcome = outcome(pastBoth);
    await waitersOnLocks(1);
    await sleep(deadlineMs * 1.3);
    await holdGate`ROLLBACK`;
    assert.equal(await pastBothOutcome, unavailable);
    await sleep(300); // its commit, and the delete after it
    assert.equal(await stored(pastBoth), 0, "committed after its 503, and left stored");
    // The client asks again (a new request of the same session, here through another replica's writer, as the
    // sources this one has sent would change what the steps below lock): its session holds the turn once.
    const retry = { ...pastBoth, request_id: randomUUID() };
    assert.equal(await outcomeOf(setup.record("owner", retry)), "stored");
    const inSession = await quiet`SELECT request_id FROM turns WHERE session_id = ${pastBoth.session_id}`;
    assert.deepEqual(
      inSession.map((t) => t.request_id),
      [retry.request_id],
    );

    // 2. The statement answers within its own deadline, but the turn queued behind another one for part of its own.
    await lock(holdGate, gate);
    await lock(holdLate, lateGate);
    const ahead = turn(randomUUID(), gate);
    const behind = turn(randomUUID(), lateGate);
    const aheadOutcome = outcome(ahead);
    await waitersOnLocks(1);
    const outcomes = [aheadOutcome, outcome(behind)];
    await sleep(deadlineMs * 0.6);
    await holdGate`ROLLBACK`; // `behind` leaves now, 0.6 of its deadline gone
    await waitersOnLocks(1);
    await sleep(deadlineMs * 0.6);
    await holdLate`ROLLBACK`; // past the turn's deadline, within its statement's
    assert.deepEqual(await Promise.all(outcomes), ["stored", unavailable]);
    await sleep(300);
    assert.deepEqual([await stored(ahead), await stored(behind)], [1, 0], "committed after its 503, and left stored");
  } finally {
    holdGate.release();
    holdLate.release();
  }
});

/** A new session of two stored turns in the quiet database. */
async function sessionOfTwoTurns(): Promise<{ session: string; turns: [Turn, Turn] }> {
  const session = randomUUID();
  const writer = createTurnWriter(quiet, 5_000);
  const turns: [Turn, Turn] = [turn(session), turn(session)];
  for (const t of turns) await writer.record("owner", t);
  return { session, turns };
}

/** The take-back of these turns (migration 014's function, as db.ts takeBackTurns calls it) on `db`. */
const takeBack = (db: postgres.Sql, turns: Turn[]) => db`SELECT take_back_turns(${db.json(turns.map((t) => t.request_id))}) AS n`;

test("taking a turn back waits for no turn being written into its session while the session keeps turns", async () => {
  const {
    session,
    turns: [, late],
  } = await sessionOfTwoTurns();
  // A turn write into the session under way: its foreign key check holds the session (KEY SHARE) until it commits,
  // and group commit holds many sessions so. The take-back locked every session of its turns, and waited for it.
  const writing = await quiet.reserve();
  try {
    await writing`BEGIN`;
    await writing`SELECT 1 FROM sessions WHERE id = ${session} FOR KEY SHARE`;
    const takenBack = takeBack(quiet, [late]).then(([row]) => row!.n);
    assert.equal(await Promise.race([takenBack, sleep(1_000).then(() => "still waiting")]), 1);
  } finally {
    await writing`ROLLBACK`;
    writing.release();
  }
});

test("two take-backs of a session's last two turns at once delete the session too", async () => {
  const {
    session,
    turns: [a, b],
  } = await sessionOfTwoTurns();
  const first = await quiet.reserve();
  try {
    await first`BEGIN`;
    await takeBack(first, [a]); // b is left: the session is kept
    const second = takeBack(quiet, [b]).execute();
    await waitersOnLocks(1); // for the first's lock: each sees the other's delete only once it committed
    await first`COMMIT`;
    await second;
  } finally {
    await first`ROLLBACK`.catch(() => {});
    first.release();
  }
  assert.equal((await quiet`SELECT id FROM sessions WHERE id = ${session}`).length, 0, "a session left without a turn");
});

test("a batch that creates a session anew, deleted under it by retention, stores only its new owner's turns there", async () => {
  const session = `shared-name-${randomUUID()}`;
  await createTurnWriter(quiet, 5_000).record("other-key", turn(session)); // the session, another key's
  const gate = sourcesOf(`gate-${randomUUID()}`);
  await createTurnWriter(quiet, 5_000).record("owner", turn(randomUUID(), gate));
  const writer = createTurnWriter(quiet, 5_000);
  const [holdGate, retention] = [await quiet.reserve(), await quiet.reserve()];
  try {
    // The writer is busy with a statement held on a lock, while a turn of each key for the session queues behind it.
    await holdGate`BEGIN`;
    await holdGate`SELECT hash FROM source_sets WHERE hash = ${sourceSetOf(gate).hash} FOR UPDATE`;
    const held = writer.record("owner", turn(randomUUID(), gate));
    await waitersOnLocks(1);
    const [mine, theirs] = [turn(session), turn(session)];
    const outcomes = [writer.record("owner", mine), writer.record("other-key", theirs)].map(outcomeOf);
    // Retention deletes the session meanwhile: the batch's snapshot still has it, as the other key's.
    await retention`BEGIN`;
    await retention`DELETE FROM turns WHERE session_id = ${session}`;
    await retention`DELETE FROM sessions WHERE id = ${session}`;
    await holdGate`ROLLBACK`;
    await held;
    await waitersOnLocks(1); // the batch's session insert waits for the delete
    await retention`COMMIT`; // and then creates the session anew, for the batch's first turn's key
    assert.deepEqual(await Promise.all(outcomes), ["stored", "Error: session_id belongs to another API key"]);
    const rows = await quiet`
      SELECT t.request_id, s.owner FROM turns t JOIN sessions s ON s.id = t.session_id WHERE t.session_id = ${session}`;
    // Before, both were stored, the other key's question in this key's session: each key read the other's.
    assert.deepEqual(
      rows.map((r) => [r.request_id, r.owner]),
      [[mine.request_id, "owner"]],
    );
  } finally {
    holdGate.release();
    retention.release();
  }
});

test("a source list is remembered as stored only by way of a turn inserted with it", async () => {
  const list = sourcesOf(`refused-${randomUUID()}`);
  await oldTurn(randomUUID(), list);

  const writer = createTurnWriter(quiet, 5_000);
  const foreign = randomUUID();
  await writer.record("someone-else", turn(foreign));
  // Refused (another key's session), though its statement found the list stored.
  await assert.rejects(writer.record("owner", turn(foreign, list)), { status: 403 });
  assert.equal((await pruneTurns(quiet, 365)).sourceSets, 1, "the list went with the old turn");

  const next = turn(randomUUID(), list);
  await writer.record("owner", next);
  assert.deepEqual(await storedSources(next.request_id), list, "sent again, not taken for stored");
});

test("a stored source list is sent again after KNOWN_FOR_MS on the monotonic clock, even with the wall clock stepped back", () => {
  const [realNow, realDateNow] = [performance.now.bind(performance), Date.now];
  let passed = 0;
  performance.now = () => realNow() + passed;
  try {
    const sets = createSourceSets();
    const set = sourceSetOf(sourcesOf("remembered"));
    sets.committed([set]);
    assert.equal(sets.unsent([set]), "[]");
    // An hour passes while NTP steps the wall clock back two days. Timed on Date.now, the set stayed remembered for 49
    // hours, past a TURN_RETENTION_DAYS of 1, and turns carried a hash whose list retention had deleted (probe BR).
    Date.now = () => realDateNow() - 2 * 86_400_000;
    passed = KNOWN_FOR_MS + 1;
    assert.match(sets.unsent([set]), new RegExp(set.hash));
  } finally {
    performance.now = realNow;
    Date.now = realDateNow;
  }
});

test("a replica shows when a sweep last finished on the database, whichever replica ran it, never its own start", async () => {
  const lastSuccess = new Gauge({ name: "stamp", help: "-", registers: [new Registry()] });
  const shown = async () => (await lastSuccess.get()).values[0]?.value ?? 0;
  const tenHoursAgo = Date.now() / 1000 - 10 * 3600;
  await quiet`UPDATE turn_retention_sweeps SET last_finished = to_timestamp(${tenHoursAgo})`;
  // Another replica holds the sweep: this one's sweeps are skipped, and it shows the date it reads, not its start.
  const holder = await quiet.reserve();
  await holder`SELECT pg_advisory_lock(${PRUNE_LOCK})`;
  const { log, lines } = capturedLog("warn");
  const retention = startTurnRetention(quiet, { days: 365, everyMs: 50, log, lastSuccess });
  try {
    await waitFor("the database's date shown", async () => (await shown()) > 0, 5_000);
    await sleep(200); // sweeps skipped meanwhile
    assert.ok(Math.abs((await shown()) - tenHoursAgo) < 1, `shown ${await shown()}, not ${tenHoursAgo}`);
    await holder`SELECT pg_advisory_unlock(${PRUNE_LOCK})`;
    await waitFor("a sweep of its own dated", async () => (await shown()) > Date.now() / 1000 - 60, 5_000);
    const [row] = await quiet<
      { at: number }[]
    >`SELECT extract(epoch FROM last_finished)::float8 AS at FROM turn_retention_sweeps`;
    assert.ok(row!.at > tenHoursAgo + 3600, "dated in the database, for the other replicas");
    assert.deepEqual(lines, []);
  } finally {
    retention.stop();
    holder.release();
  }

  // Nothing listens on port 1: every sweep fails, and nothing is shown (the alert skips a 0).
  const unreachable = postgres("postgres://postgres@127.0.0.1:1/postgres", { onnotice: () => {}, max: 1 });
  const failingGauge = new Gauge({ name: "stamp", help: "-", registers: [new Registry()] });
  const failing = capturedLog("warn");
  const failingRetention = startTurnRetention(unreachable, {
    days: 365,
    everyMs: 50,
    log: failing.log,
    lastSuccess: failingGauge,
  });
  try {
    await waitFor(
      "sweeps failing",
      async () => failing.lines.filter((l) => l.includes("turn retention sweep failed")).length >= 2,
    );
    assert.equal((await failingGauge.get()).values[0]?.value ?? 0, 0);
  } finally {
    failingRetention.stop();
    // A sweep may still wait out the driver's reconnect backoff: do not wait for it.
    await unreachable.end({ timeout: 0 });
  }
});
