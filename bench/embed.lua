-- wrk script: one text per POST /embed, cycling through bench/texts.txt.
local texts = {}
for line in io.lines(os.getenv("BENCH_TEXTS") or "bench/texts.txt") do
  if #line > 0 then texts[#texts + 1] = line end
end
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  i = i % #texts + 1
  local body = '{"inputs": "' .. texts[i]:gsub('\\', '\\\\'):gsub('"', '\\"') .. '"}'
  return wrk.format(nil, "/embed", nil, body)
end

done = function(summary, latency, requests)
  local s = summary.duration / 1e6
  io.write(string.format(
    '{"requests":%d,"errors":%d,"texts_per_s":%.1f,"p50_ms":%.2f,"p99_ms":%.2f}\n',
    summary.requests,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / s,
    latency:percentile(50) / 1000,
    latency:percentile(99) / 1000))
end
