-- wrk script for scripts/bench-serve.sh: POST a JSON push record with a new
-- ivruniqueid on every request (thread id + counter), so each one is stored, not a
-- resend.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_id = id
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

function request()
  counter = counter + 1
  local body = string.format(
    '{"caller":"0501234567","target":"039876543","time":%d,"duration":42,"ivruniqueid":"%d.%d","type":"Incoming Call","status":"ANSWER","price":125,"dialtime":5,"queueid":0,"record":"https://rec.example/%d.%d.mp3","IVR":[{"layer_id":7,"layer_name":"Main","layer_number":1,"Dtmf":"2","dtmf_order":1}]}',
    1709251200 + (counter % 86400), thread_id, counter, thread_id, counter)
  return wrk.format(nil, nil, nil, body)
end
