-- The requests bench/run.py sends, for wrk (Debian's `wrk` package): wrk's event loop in C
-- keeps the load generator's own share of the two cores small. Settings come from the
-- environment, because wrk runs this file's top level before any thread starts:
--   TOLLGATE_BENCH_MODE       check | healthz | event | loop | batch; loop alternates a check and one
--                             unit recorded for the same customer, as a product that asks, serves
--                             and reports does
--   TOLLGATE_BENCH_KEY        the API key
--   TOLLGATE_BENCH_CUSTOMERS  how many customers (bench-F .. bench-F+N-1) to pick from at random
--   TOLLGATE_BENCH_FIRST      F, the first of them (0 unless set)
--   TOLLGATE_BENCH_RUN        a word unique to this run, so idempotency keys never repeat
--   TOLLGATE_BENCH_RATE       requests/s in total; unset for as fast as the server answers
--   TOLLGATE_BENCH_CONNECTIONS  wrk's -c, to spread that rate over the connections

local mode = os.getenv("TOLLGATE_BENCH_MODE")
local customers = tonumber(os.getenv("TOLLGATE_BENCH_CUSTOMERS"))
local run = os.getenv("TOLLGATE_BENCH_RUN")
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOLLGATE_BENCH_KEY"),
  ["Content-Type"] = "application/json",
}
local first = tonumber(os.getenv("TOLLGATE_BENCH_FIRST") or "0")
local rate = tonumber(os.getenv("TOLLGATE_BENCH_RATE") or "")
local sent = 0
-- In the loop, the customer the last check asked about: the next request records for it.
local looped = nil

local threads = 0
function setup(thread)
  thread:set("thread_number", threads)
  threads = threads + 1
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

local function customer()
  return "bench-" .. (first + math.random(0, customers - 1))
end

local function event_json(key, reference)
  return '{"eventIdempotencyKey":"' .. key .. '","eventName":"api.call","customerReferenceId":"'
    .. (reference or customer()) .. '","featureKey":"api_calls","usageUnits":1}'
end

local function check_request(reference)
  return wrk.format("GET", "/api/v1/client/entitlements/" .. reference .. "/api_calls", headers)
end

function request()
  sent = sent + 1
  local key = run .. "-" .. (thread_number or 0) .. "-" .. sent
  if mode == "check" then
    return check_request(customer())
  elseif mode == "healthz" then
    -- Tollgate's endpoint that answers fixed JSON: what its request hooks cost by themselves.
    return wrk.format("GET", "/healthz", headers)
  elseif mode == "loop" then
    -- wrk gives a script no say over which connection sends what, so the pair's two requests
    -- go out one after the other on two connections; with random customers the check still
    -- finds whatever the customer's previous report left. bench/run.py runs the loop with one
    -- connection per wrk thread (each thread has a Lua state of its own): there each pair goes
    -- out on one connection, the record after the check's answer.
    if looped == nil then
      looped = customer()
      return check_request(looped)
    end
    local reference = looped
    looped = nil
    return wrk.format("POST", "/api/v1/client/events", headers, event_json(key, reference))
  elseif mode == "event" then
    return wrk.format("POST", "/api/v1/client/events", headers, event_json(key))
  else
    local events = {}
    for i = 1, 1000 do
      events[i] = event_json(key .. "-" .. i)
    end
    local body = '{"events":[' .. table.concat(events, ",") .. "]}"
    -- A new connection per batch: gunicorn's workers take connections as they come, so a few
    -- kept open can all land on one worker and leave the other core idle for the whole run.
    local batch_headers = {["Connection"] = "close"}
    for name, value in pairs(headers) do
      batch_headers[name] = value
    end
    return wrk.format("POST", "/api/v1/client/events/batch", batch_headers, body)
  end
end

if rate then
  -- Poisson arrivals at the given rate: each connection waits an exponential time between
  -- requests (wrk takes whole milliseconds; rounding up or down at random keeps the mean).
  local connections = tonumber(os.getenv("TOLLGATE_BENCH_CONNECTIONS"))
  local mean_ms = 1000 * connections / rate
  -- wrk asks for a delay before each connection's first request too. Those go at once: gunicorn's
  -- gthread worker gives a new connection a thread of its own until its first request comes, so
  -- 16 fresh connections that each wait first tie up every thread while requests that did
  -- come queue behind them. Measured on the bare endpoint with one worker at 50 requests/s:
  -- p99 of 220-350 ms, all in a run's first half second; 12-21 ms once they go at once.
  local delays = 0
  function delay()
    delays = delays + 1
    if delays <= connections then
      return 0
    end
    local wait = -math.log(1 - math.random()) * mean_ms
    local whole = math.floor(wait)
    if math.random() < wait - whole then
      whole = whole + 1
    end
    return whole
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "TOLLGATE_BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    latency:percentile(50), latency:percentile(99)
  ))
end
