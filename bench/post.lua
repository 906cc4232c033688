-- wrk script: POST a task submission (the same body the ceiling server publishes)
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.body = '{"args":[2,3]}'
