-- Sessions belong to the API key that opened them (owner = key id, never the key).
CREATE TABLE sessions (
  id          text PRIMARY KEY,
  owner       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE turns (
  id                 bigserial PRIMARY KEY,
  request_id         text NOT NULL UNIQUE,
  session_id         text NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
  question           text NOT NULL,
  answer             text NOT NULL,
  sources            jsonb NOT NULL DEFAULT '[]',
  model              text NOT NULL,
  prompt_tokens      integer NOT NULL DEFAULT 0,
  completion_tokens  integer NOT NULL DEFAULT 0,
  latency_ms         integer NOT NULL,
  cached             boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now()
);
-- GET /api/v1/sessions/:id reads a session's turns oldest first.
CREATE INDEX turns_session_created_idx ON turns (session_id, created_at, id);

CREATE TABLE documents (
  id           text PRIMARY KEY,
  title        text,
  metadata     jsonb NOT NULL DEFAULT '{}',
  chunk_count  integer NOT NULL,
  created_by   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE feedback (
  id             bigserial PRIMARY KEY,
  request_id     text NOT NULL REFERENCES turns(request_id) ON DELETE CASCADE,
  quality_score  smallint NOT NULL CHECK (quality_score BETWEEN 1 AND 5),
  is_correct     boolean,
  comment        text,
  created_by     text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_request_idx ON feedback (request_id);

-- Only SHA-256 hashes of keys are stored.
CREATE TABLE api_keys (
  id          bigserial PRIMARY KEY,
  name        text NOT NULL,
  key_hash    text NOT NULL UNIQUE,
  scopes      text[] NOT NULL DEFAULT '{query}',
  created_at  timestamptz NOT NULL DEFAULT now(),
  revoked_at  timestamptz
);
