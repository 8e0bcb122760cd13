-- formerly: 0009_requests_today
-- Requests answered on `day` (UTC), counted in the statement that takes the rate limit, for
-- GET /v1/usage.
ALTER TABLE rate_limits ADD COLUMN day date, ADD COLUMN requests bigint NOT NULL DEFAULT 0;
