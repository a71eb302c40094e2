-- Distinct join events (new call ids), JSON as the platform page's handler reads them.
local counter = 0
local thread_id = 0
setup = function(thread)
  thread:set("tid", thread_id)
  thread_id = thread_id + 1
end
request = function()
  counter = counter + 1
  local body = '{"ConferenceName":"bench-' .. tid .. '-' .. math.floor(counter / 10) ..
               '","StatusCallbackEvent":"join","CallId":"ev-' .. tid .. '-' .. counter .. '"}'
  return wrk.format("POST", "/conference/events", {["Content-Type"] = "application/json"}, body)
end
