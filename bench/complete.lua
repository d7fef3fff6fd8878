-- complete.lua: wrk script for bench/cr_rate.sh. POSTs /governance/complete/ with a distinct
-- context_id per request, taken from IDS (one a line; thread k of n takes lines k, k+n, ...),
-- so every request consumes a fresh single-use AC. Counts 200s; when a thread runs out of
-- ids it stops and says so; what it still sends then names an unknown context (404), never a
-- used one (an identical retry would answer 200 again and inflate the count).
--   wrk -s bench/complete.lua URL -- TOKEN IDS NTHREADS BODY_TEMPLATE
-- BODY_TEMPLATE holds the literal text CTX where the context id goes.
local counter = 0
local threads = {}
local ids, head, tail = {}, "", ""
local i = 0
ok, other, exhausted = 0, 0, 0

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
    table.insert(threads, thread)
end

function init(args)
    local n, k = tonumber(args[3]), 0
    for line in io.lines(args[2]) do
        if k % n == tid then
            ids[#ids + 1] = line
        end
        k = k + 1
    end
    head, tail = args[4]:match("^(.*)CTX(.*)$")
    assert(head, "BODY_TEMPLATE has no CTX")
    wrk.headers["Authorization"] = "Bearer " .. args[1]
    wrk.headers["Content-Type"] = "application/json"
end

local unknown = "ctx_" .. string.rep("0", 32)

function request()
    i = i + 1
    if i > #ids then
        exhausted = 1
        wrk.thread:stop()
        return wrk.format("POST", nil, nil, head .. unknown .. tail)
    end
    return wrk.format("POST", nil, nil, head .. ids[i] .. tail)
end

function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local tok, toth, tex = 0, 0, 0
    for _, t in ipairs(threads) do
        tok = tok + t:get("ok")
        toth = toth + t:get("other")
        tex = tex + t:get("exhausted")
    end
    io.write(string.format("complete.lua: ok=%d other=%d exhausted=%d duration_us=%d\n",
                           tok, toth, tex, summary.duration))
end
