-- issue.lua: wrk script for bench/cr_rate.sh. POSTs /governance/authorize/ and appends the
-- context_id of every AC issued (200) to OUT.<thread>, one a line, flushed at once so the
-- caller can count them and stop wrk (SIGINT) when it has enough.
--   wrk -s bench/issue.lua URL -- TOKEN OUT BODY
local counter = 0
local out
local ok, other = 0, 0

function setup(thread)
    thread:set("tid", counter)
    counter = counter + 1
end

function init(args)
    out = assert(io.open(args[2] .. "." .. tid, "w"))
    wrk.method = "POST"
    wrk.body = args[3]
    wrk.headers["Authorization"] = "Bearer " .. args[1]
    wrk.headers["Content-Type"] = "application/json"
end

function response(status, headers, body)
    if status == 200 then
        local ctx = body:match('"context_id":%s*"(ctx_%x+)"')
        if ctx then
            out:write(ctx, "\n")
            out:flush()
            ok = ok + 1
            return
        end
    end
    other = other + 1
end
