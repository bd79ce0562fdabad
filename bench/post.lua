-- wrk script: POST one small chat completion with a bearer key, and report the run as one JSON line.
--
-- Environment: BENCH_KEY (the bearer key), BENCH_BODY (the request body, optional),
-- BENCH_BODY_FILE (a file holding the request body, read once; for bodies too large for the environment),
-- BENCH_PATH (the request path, optional), BENCH_SAMPLE_OVERHEAD=1 (also collect the gateway's
-- x-gateway-overhead-ms header; only for the dedicated sampling run, it costs wrk some CPU).

wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH") or "/v1/chat/completions"
wrk.body = os.getenv("BENCH_BODY") or '{"model":"bench","messages":[{"role":"user","content":"hi"}]}'
if os.getenv("BENCH_BODY_FILE") then
   local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
   wrk.body = f:read("*a")
   f:close()
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_KEY") or "sk-1234")

local threads = {}

function setup(thread)
   table.insert(threads, thread)
end

if os.getenv("BENCH_SAMPLE_OVERHEAD") == "1" then
   samples = {}
   nsamples = 0
   function response(status, headers, body)
      local v = headers["x-gateway-overhead-ms"] or headers["X-Gateway-Overhead-Ms"]
      if v and nsamples < 100000 then
         nsamples = nsamples + 1
         samples[nsamples] = tonumber(v)
      end
   end
end

local function median(xs)
   if #xs == 0 then return -1 end
   table.sort(xs)
   return xs[math.floor((#xs + 1) / 2)]
end

function done(summary, latency, requests)
   local overhead = {}
   for _, t in ipairs(threads) do
      local s = t:get("samples")
      if s then
         for _, v in ipairs(s) do table.insert(overhead, v) end
      end
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
      '"overhead_samples":%d,"overhead_p50_ms":%.3f}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max,
      #overhead, median(overhead)))
end
