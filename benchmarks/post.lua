-- wrk script of the benchmark: POSTs JSON bodies read from a file, one body a line, cycling through them.
--
-- Usage: wrk -t T -c C -d MEASURE+MAX_DRAIN -s post.lua URL -- BODIES_FILE MEASURE_SECONDS [RECYCLE]
--
-- One request in RECYCLE (default 0: never) asks the server to close its connection after
-- answering ("Connection: close"); wrk then reconnects. Clients come and go in real traffic: a
-- server with several worker processes sharing one socket gives a burst of new connections to
-- whichever worker accepts first, and keep-alive would keep them there for the whole run.
--
-- Each thread sends requests for MEASURE_SECONDS, then stops sending: delay() parks every
-- connection once its in-flight answer is back. When a thread has no request in flight it
-- prints "BENCH_DRAINED", and benchmarks/run.py interrupts wrk (SIGINT) once every thread has:
-- nothing is in flight when wrk stops, so every answer the server sent was counted here and
-- the traces in the database can be compared exactly with the 2xx answers. Latency is
-- measured from the write of each request, so parking does not distort it. done() prints one
-- line, "BENCH_RESULT {json}", that benchmarks/run.py reads.

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local timespec = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, timespec)
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) / 1e9
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_index", #threads)
end

function init(args)
  local path, measure = args[1], tonumber(args[2])
  recycle = tonumber(args[3] or "0")
  if path == nil or measure == nil then
    error("post.lua needs: -- BODIES_FILE MEASURE_SECONDS [RECYCLE]")
  end
  requests, closing_requests = {}, {}
  local closing_headers = {["Content-Type"] = "application/json", ["Connection"] = "close"}
  for line in io.lines(path) do
    if #line > 0 then
      table.insert(requests, wrk.format(nil, nil, nil, line))
      table.insert(closing_requests, wrk.format(nil, nil, closing_headers, line))
    end
  end
  if #requests == 0 then
    error("no request body in " .. path)
  end
  -- Threads start at different bodies so concurrent requests carry different employees.
  cursor = ((thread_index or 1) - 1) * 7919 % #requests
  ok_responses, ok_rows, bad_responses, bad_statuses, sent = 0, 0, 0, "", 0
  if thread_index == 1 then
    -- wrk 4 calls request() once in its first thread, after init(), to check the script
    -- (script_verify_request): that call sends nothing.
    sent = -1
  end
  drained = false
  started_at = now()
  deadline = started_at + measure
  last_answer_at = started_at
end

function request()
  sent = sent + 1
  cursor = cursor % #requests + 1
  if recycle > 0 and sent % recycle == 0 then
    return closing_requests[cursor]
  end
  return requests[cursor]
end

local function announce_when_drained(at)
  if not drained and at >= deadline and sent == ok_responses + bad_responses then
    drained = true
    io.write("BENCH_DRAINED\n")
    io.flush()
  end
end

function delay()
  local at = now()
  if at >= deadline then
    announce_when_drained(at)
    return 3600000 -- park the connection: wrk is stopped before this delay ends
  end
  return 0
end

function response(status, headers, body)
  last_answer_at = now()
  if status >= 200 and status < 300 then
    ok_responses = ok_responses + 1
    -- Rows answered: one request_id per predicted employee (a batch answer holds one per row).
    local _, rows = string.gsub(body or "", '"request_id"', "")
    ok_rows = ok_rows + rows
  else
    bad_responses = bad_responses + 1
    if #bad_statuses < 200 then
      bad_statuses = bad_statuses .. status .. " "
    end
  end
  announce_when_drained(last_answer_at)
end

function done(summary, latency, requests_stats)
  local ok, rows, bad, window, statuses, sent_total = 0, 0, 0, 0, "", 0
  for _, thread in ipairs(threads) do
    sent_total = sent_total + thread:get("sent")
    ok = ok + thread:get("ok_responses")
    rows = rows + thread:get("ok_rows")
    bad = bad + thread:get("bad_responses")
    statuses = statuses .. thread:get("bad_statuses")
    local elapsed = thread:get("last_answer_at") - thread:get("started_at")
    if elapsed > window then
      window = elapsed
    end
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"sent": %d, "ok_responses": %d, "ok_rows": %d, "non_2xx": %d, "non_2xx_statuses": "%s", ' ..
    '"completed": %d, "window_s": %.6f, "duration_us": %d, ' ..
    '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p95": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    sent_total, ok, rows, bad, statuses, summary.requests, window, summary.duration,
    e.connect, e.read, e.write, e.timeout, e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(95), latency:percentile(99),
    latency.max, latency.mean))
end
