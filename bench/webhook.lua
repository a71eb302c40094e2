-- wrk script for bench/serve_bench.py. BENCH_KIND=join: every request is a new call to a
-- new room (five calls a room), so each takes a real seat; a fixed room would fill after 10
-- and measure only the "full" path. BENCH_KIND=events: distinct join events, JSON, as the
-- platform page's handler reads them.
-- BENCH_RUN, when set, prefixes every call id and room, so a run against a store that kept an
-- earlier run's rows (a PostgreSQL database) takes new seats and stores new events, not duplicates.
local kind = os.getenv("BENCH_KIND") or "join"
local run = os.getenv("BENCH_RUN") or ""
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local id = run .. tid .. "-" .. counter
  if kind == "events" then
    local body = '{"ConferenceName":"bench-' .. run .. tid .. '-' .. math.floor(counter / 10) ..
                 '","StatusCallbackEvent":"join","CallId":"ev-' .. id .. '"}'
    return wrk.format("POST", "/conference/events", {["Content-Type"] = "application/json"}, body)
  end
  local room = "bench-" .. run .. tid .. "-" .. math.floor(counter / 5)
  local body = "CallId=call-" .. id .. "&From=%2B254700000001&To=%2B254700000002&Direction=inbound"
  local host = (counter % 5 == 0) and "1" or "0"
  return wrk.format("POST", "/conference/join?room=" .. room .. "&host=" .. host,
                    {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
