-- Replays pre-built signed requests (one per line: signature TAB form body), each once.
-- Each wrk thread takes every Nth line (N = thread count), so no request is sent twice.
-- Usage: wrk -s bench/replay.lua URL -- FILE PATH THREADS

local threads_started = 0
local requests_file, request_path, thread_count
local lines = {}
local index, stride, exhausted = 0, 1, 0

function setup(thread)
  thread:set("id", threads_started)
  threads_started = threads_started + 1
end

function init(args)
  requests_file, request_path, thread_count = args[1], args[2], tonumber(args[3])
  stride = thread_count
  for line in io.lines(requests_file) do
    lines[#lines + 1] = line
  end
  index = (tonumber(id) or 0) + 1
end

function request()
  if index > #lines then
    exhausted = exhausted + 1
    index = ((index - 1) % stride) + 1  -- wraps around: later requests are duplicates
  end
  local line = lines[index]
  index = index + stride
  local tab = line:find("\t", 1, true)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = line:sub(1, tab - 1),
  }
  return wrk.format("POST", request_path, headers, line:sub(tab + 1))
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH {\"requests\": %d, \"duration_us\": %d, \"p50_us\": %d, \"p99_us\": %d, " ..
    "\"non_2xx\": %d, \"socket_errors\": %d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
