-- session.lua: wrk script for bench/session_page.sh. POSTs N distinct CRs into one session
-- context (each with its own stdout_hash, so none is an identical retry of another), then
-- stops; the caller counts what was stored.
--   wrk -t1 -s bench/session.lua URL -- TOKEN N BODY_TEMPLATE
-- BODY_TEMPLATE holds the literal text HASH where a 64-hex-digit stdout hash goes.
local n, sent = 0, 0
local head, tail

function init(args)
    wrk.headers["Authorization"] = "Bearer " .. args[1]
    wrk.headers["Content-Type"] = "application/json"
    n = tonumber(args[2])
    head, tail = args[3]:match("^(.*)HASH(.*)$")
    assert(head, "BODY_TEMPLATE has no HASH")
end

function request()
    sent = sent + 1
    if sent > n then
        wrk.thread:stop() -- the caller stops wrk itself (SIGINT) once all are stored
    end
    return wrk.format("POST", nil, nil, head .. string.format("%064x", sent) .. tail)
end
