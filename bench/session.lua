-- session.lua: wrk script for bench/session_rate.sh. POSTs /governance/complete/ into ONE
-- session context: every request a different CR (BODY_TEMPLATE's literal text SEQ becomes a
-- running number), so none is an identical retry. Each thread sends at most TOTAL/NTHREADS
-- requests, then stops; the database (crs.sequence, crs.received_at) is the record.
--   wrk -s bench/session.lua URL -- TOKEN BODY_TEMPLATE TOTAL NTHREADS
local counter = 0
local threads = {}
local head, tail = "", ""
local sent, limit = 0, 0
ok, other = 0, 0

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    head, tail = args[2]:match("^(.*)SEQ(.*)$")
    assert(head, "BODY_TEMPLATE has no SEQ")
    limit = math.floor(tonumber(args[3]) / tonumber(args[4]))
    wrk.headers["Authorization"] = "Bearer " .. args[1]
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    sent = sent + 1
    if sent > limit then
        wrk.thread:stop()
    end
    return wrk.format("POST", nil, nil, head .. (tid * 100000000 + sent) .. tail)
end

function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local tok, toth = 0, 0
    for _, t in ipairs(threads) do
        tok = tok + t:get("ok")
        toth = toth + t:get("other")
    end
    io.write(string.format("session.lua: ok=%d other=%d duration_us=%d\n", tok, toth,
                           summary.duration))
end
