-- The requests bench/cost_events.py sends, for wrk: usage events of the metered feature
-- `ai_chat`, with or without a costInput, one per request or in batches of 1,000. Settings come
-- from the environment, as in bench/load.lua (same names, same figures line at the end):
--   TOLLGATE_BENCH_MODE       event | event_cost | batch | batch_cost
--   TOLLGATE_BENCH_KEY        the API key
--   TOLLGATE_BENCH_CUSTOMERS  how many customers (bench-0 .. bench-N-1) to pick from at random
--   TOLLGATE_BENCH_RUN        a word unique to this run, so idempotency keys never repeat
--
-- Both variants of a workload draw the same random numbers (customer, model, token counts) and
-- send the same usageUnits (input + output tokens); the only difference is the costInput object.
-- A batch answers 200 even when some of its events are refused, so the answers are read and the
-- refused events counted (`rejected=` on the figures line): a variant that is fast because its
-- events are refused must show it.

local mode = os.getenv("TOLLGATE_BENCH_MODE")
local customers = tonumber(os.getenv("TOLLGATE_BENCH_CUSTOMERS"))
local run = os.getenv("TOLLGATE_BENCH_RUN")
local with_cost = mode == "event_cost" or mode == "batch_cost"
local batched = mode == "batch" or mode == "batch_cost"
local headers = {
  ["Authorization"] = "Bearer " .. os.getenv("TOLLGATE_BENCH_KEY"),
  ["Content-Type"] = "application/json",
}
if batched then
  -- A new connection per batch, as bench/load.lua does: a few kept open can all land on one
  -- gunicorn worker and leave the other core idle.
  headers["Connection"] = "close"
end

-- Models genai-prices knows, each with its provider.
local models = {
  {"gpt-4o", "openai"},
  {"claude-sonnet-4-5", "anthropic"},
  {"gemini-2.5-flash", "google"},
}

local sent = 0
rejected = 0

local threads = {}
function setup(thread)
  thread:set("thread_number", #threads)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + (thread_number or 0))
end

local function event_json(key)
  local customer = "bench-" .. math.random(0, customers - 1)
  local model = models[math.random(1, #models)]
  local input = math.random(100, 4000)
  local output = math.random(20, 1500)
  local cached = math.random(0, math.floor(input / 2))
  local body = '{"eventIdempotencyKey":"' .. key .. '","eventName":"ai.chat","customerReferenceId":"'
    .. customer .. '","featureKey":"ai_chat","usageUnits":' .. (input + output)
  if with_cost then
    body = body .. ',"costInput":{"model":"' .. model[1] .. '","modelProvider":"' .. model[2]
      .. '","inputTokens":' .. input .. ',"outputTokens":' .. output
      .. ',"cachedInputTokens":' .. cached .. "}"
  end
  return body .. "}"
end

function request()
  sent = sent + 1
  local key = run .. "-" .. (thread_number or 0) .. "-" .. sent
  if not batched then
    return wrk.format("POST", "/api/v1/client/events", headers, event_json(key))
  end
  local events = {}
  for i = 1, 1000 do
    events[i] = event_json(key .. "-" .. i)
  end
  return wrk.format(
    "POST", "/api/v1/client/events/batch", headers, '{"events":[' .. table.concat(events, ",") .. "]}"
  )
end

function response(status, response_headers, body)
  -- One request's refusal is a 4xx, which wrk counts among its errors; a batch's refused events
  -- are in its 200 answer.
  if batched and status == 200 then
    local _, count = string.gsub(body, '"status":%s*"rejected"', "")
    rejected = rejected + count
  end
end

function done(summary, latency, requests)
  local errors = summary.errors
  local refused = 0
  for _, thread in ipairs(threads) do
    refused = refused + (thread:get("rejected") or 0)
  end
  io.write(string.format(
    "TOLLGATE_BENCH requests=%d duration_us=%d errors=%d p50_us=%d p99_us=%d rejected=%d\n",
    summary.requests, summary.duration,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    latency:percentile(50), latency:percentile(99), refused
  ))
end
