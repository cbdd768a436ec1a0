-- mod_auth_tokenauthd: Prosody 0.12 and 13 authentication through tokenauthd.
--
-- A drop-in replacement for prosody-modules' mod_auth_token (+ mod_sasl_token):
-- users log in with the one-time tokens your application mints, and the
-- tokens are checked by the tokenauthd daemon (`tokenauthd serve`), which
-- keeps the secrets and the replay record.
--
--   authentication = "tokenauthd"
--   tokenauthd_socket = "/run/tokenauthd/tokenauthd.sock"  -- the default
--   tokenauthd_timeout = 2                                  -- seconds, the default
--
-- How it works
--   * One Unix-socket connection per VirtualHost to the daemon, through
--     LuaSocket's socket.unix and Prosody's own event loop
--     (net.server.wrapclient). Requests are the generic line protocol:
--     "auth:USER:HOST:PASSWORD\n" and "isuser:USER:HOST\n", answered by
--     "1\n" (yes) or "0\n" (no), in order.
--   * A login waits for its answer through util.async: only that client's
--     session pauses, Prosody keeps serving everybody else. A caller that is
--     not inside an async runner is refused rather than blocking the server.
--   * Answers are matched to requests strictly in order. When a request gets
--     no answer within tokenauthd_timeout it is refused, and the connection
--     is closed so that its late answer cannot be taken for the next
--     request's.
--   * A request is never sent twice. When a connection closes (a timeout, a
--     malformed answer, the daemon going away), the requests already written
--     to it are refused as "unavailable" (X-TOKEN: temporary-auth-failure;
--     PLAIN: not-authorized, with the real reason logged): the daemon may
--     have read and judged them, recording the token as used, so sending
--     one again would have a good token refused as replayed. Only requests
--     never written are sent on a fresh connection.
--   * When the daemon is down or restarts, the module reconnects by itself
--     (with a short back-off) while requests wait; no reload is needed. A
--     login that was written just before the daemon died is refused as
--     unavailable (the user tries again with a new token); one that comes
--     while the daemon is down waits and goes through once it is back.
--   * tokenauthd_timeout must exceed the daemon's worst answer time, which
--     with the Redis store is its redis_timeout_ms: otherwise slow answers
--     are refused here and the connection churns.
--   * SASL mechanisms: PLAIN, and X-TOKEN (mod_sasl_token's name for PLAIN's
--     wire format). X-TOKEN answers temporary-auth-failure when the daemon
--     cannot be reached in time; PLAIN can only say not-authorized.
--   * user_exists asks the daemon ("isuser"). Passwords cannot be changed,
--     and accounts cannot be created or deleted here: the application owns
--     them, as with mod_auth_token.
--   * Passwords are never logged. A password holding a newline, a carriage
--     return or a NUL byte is refused without being sent.
--   * A token logs in the account it was minted for, nothing else: a login
--     whose SASL authorization identity (authzid) names another account is
--     refused without being sent (X-TOKEN: invalid-authzid). X-TOKEN always
--     sees the authzid; PLAIN sees it from Prosody 13 on (0.12 does not pass
--     it to the provider, and logs the user in as the authenticated account).
--   * One file for Prosody 0.12 and 13: each library is required under its
--     Prosody 13 name (prosody.util.*) when there is one, else under its
--     0.12 name (util.*), which 13 keeps only for a transition.
--
-- Security: Prosody offers X-TOKEN on unencrypted streams unless told
-- otherwise. Keep c2s_require_encryption = true (Prosody's default), or add
-- "X-TOKEN" to insecure_sasl_mechanisms.

-- import requires one of Prosody's libraries by its Prosody 13 name, or by
-- its 0.12 name where the new one does not exist.
local function import(name)
	local ok, lib = pcall(require, "prosody." .. name);
	if ok then return lib; end
	return require(name);
end

local async = import "util.async";
local server = import "net.server";
local sasl = import "util.sasl";
local encodings = import "util.encodings";
local jid = import "util.jid";
local unix = require "socket.unix"; -- LuaSocket, not Prosody's

local saslprep = encodings.stringprep.saslprep;
local nodeprep = encodings.stringprep.nodeprep;

local host = module.host;
local socket_path = module:get_option_string("tokenauthd_socket", "/run/tokenauthd/tokenauthd.sock");
local timeout = module:get_option_number("tokenauthd_timeout", 2);
if timeout <= 0 then
	module:log("error", "tokenauthd_timeout must be positive, using 2 seconds");
	timeout = 2;
end

-- The longest request line the daemon reads (newline excluded).
local max_line = 4096;
-- Reconnection back-off, in seconds.
local retry_min, retry_max = 0.05, 1;

--------------------------------------------------------------------------
-- The connection to the daemon
--------------------------------------------------------------------------

-- queue holds the requests waiting for an answer, oldest first. Invariant:
-- the requests written (req.sent) are all on conn, in queue order, ahead of
-- those not written yet; when conn goes they leave the queue (refused as
-- unavailable); so the next answer on conn always belongs to queue[1].
local queue = {};
local conn = nil;        -- the net.server interface, or nil
local rxbuf = "";        -- bytes received after the last complete line
local retry_timer = nil; -- pending reconnection attempt
local retry_delay = retry_min;
local down_since = nil;  -- set while the daemon cannot be reached (logged once)
local unreachable_why = nil; -- why, while it cannot: every refused login says so
local unloaded = false;  -- after unload, timers no longer fire: ask nothing

local listeners = {};
local connect;

-- finish ends a request: stops its timer, takes it out of the queue and
-- wakes the session waiting for it. answer is "1" or "0", or nil with err.
local function finish(req, answer, err)
	if req.finished then return; end
	req.finished = true;
	req.answer, req.err = answer, err;
	if req.timer then req.timer:stop(); req.timer = nil; end
	for i = 1, #queue do
		if queue[i] == req then table.remove(queue, i); break; end
	end
	req.done();
end

-- take_sent takes the requests written to the connection out of the
-- queue and returns them, oldest first.
local function take_sent()
	local sent, rest = {}, {};
	for _, req in ipairs(queue) do
		table.insert(req.sent and sent or rest, req);
	end
	queue = rest;
	return sent;
end

-- lost refuses requests whose connection closed before they were answered.
-- They are not sent again: the daemon may have read them and recorded the
-- token as used, so a second try would be refused as a replay.
local function lost(reqs, why)
	for _, req in ipairs(reqs) do
		finish(req, nil, "the connection to tokenauthd closed (" .. why
			.. ") before the answer came; not sent again, as tokenauthd may have used the token");
	end
end

-- drop closes the connection, refusing as unavailable the requests already
-- written to it; culprit (optional, one of them) is refused with its own
-- error instead. The requests never written stay queued.
local function drop(why, culprit, culprit_err)
	local c = conn;
	if not c then return; end
	conn, rxbuf = nil, "";
	local sent = take_sent();
	module:log("debug", "Closing the connection to tokenauthd (%s)", why);
	c:close(); -- its ondisconnect sees conn ~= c and does nothing more
	-- Woken sessions may ask again: conn is already nil, so they queue.
	if culprit then finish(culprit, nil, culprit_err); end
	lost(sent, why);
end

local function schedule_retry()
	if retry_timer or #queue == 0 then return; end
	local delay = retry_delay;
	retry_delay = math.min(retry_delay * 2, retry_max);
	retry_timer = module:add_timer(delay, function ()
		retry_timer = nil;
		if not conn and #queue > 0 then connect(); end
	end);
end

-- flush writes every queued request, connecting first if need be.
local function flush()
	if #queue == 0 then return; end
	if not conn then
		if not retry_timer then connect(); end
		return;
	end
	local c = conn;
	for _, req in ipairs(queue) do
		if conn ~= c then return; end -- a failed write dropped it
		if not req.sent then
			-- Counted as written from here on: bytes handed to the event
			-- loop may reach the daemon even if the write then fails.
			req.sent = true;
			c:write(req.line);
		end
	end
end

local function unreachable(err)
	unreachable_why = err;
	if not down_since then
		down_since = os.time();
		module:log("warn", "Cannot reach tokenauthd at %s: %s (retrying while logins wait)", socket_path, err);
	else
		module:log("debug", "Cannot reach tokenauthd at %s: %s", socket_path, err);
	end
	schedule_retry();
end

function connect()
	local sock, err = unix.stream();
	if not sock then return unreachable(err); end
	sock:settimeout(0);
	local ok, cerr = sock:connect(socket_path);
	if not ok and cerr ~= "timeout" then -- "timeout": still in progress
		sock:close();
		return unreachable(cerr);
	end
	local c, werr = server.wrapclient(sock, socket_path, 0, listeners, 4096);
	if not c then
		sock:close();
		return unreachable(werr or "cannot watch the socket");
	end
	conn, rxbuf = c, "";
	flush();
end

function listeners.onconnect(c)
	if c ~= conn then return; end
	unreachable_why = nil; -- reached: a silence from here on is the daemon's
	module:log("debug", "Connected to tokenauthd at %s", socket_path);
end

function listeners.onincoming(c, data)
	if c ~= conn then return; end
	rxbuf = rxbuf .. data;
	-- Match every complete line first, then wake the sessions: a woken
	-- session may send a new request before this function returns.
	local answered, bad = {}, nil;
	while true do
		local nl = rxbuf:find("\n", 1, true);
		if not nl then break; end
		local line = rxbuf:sub(1, nl - 1):gsub("\r$", "");
		rxbuf = rxbuf:sub(nl + 1);
		local req = queue[1];
		if not req or not req.sent then
			bad = "an answer nobody asked for";
			break;
		elseif line ~= "1" and line ~= "0" then
			bad = "a malformed answer";
			table.remove(queue, 1);
			answered[#answered + 1] = { req, nil, "tokenauthd sent a malformed answer" };
			break;
		end
		table.remove(queue, 1);
		answered[#answered + 1] = { req, line };
	end
	if not bad and #rxbuf > 16 then
		bad = "an overlong answer";
	end
	if bad then
		module:log("error", "tokenauthd at %s sent %s; reconnecting", socket_path, bad);
		drop(bad);
	elseif #answered > 0 then
		retry_delay = retry_min;
		if down_since then
			module:log("info", "tokenauthd at %s is answering again", socket_path);
			down_since, unreachable_why = nil, nil;
		end
	end
	for _, a in ipairs(answered) do
		-- already out of the queue; finish stops the timer and wakes
		finish(a[1], a[2], a[3]);
	end
	flush();
end

function listeners.ondisconnect(c, err)
	if c ~= conn then return; end
	conn, rxbuf = nil, "";
	local sent = take_sent();
	if #queue == 0 then -- nothing left to send: the next request connects again
		module:log("debug", "tokenauthd closed the connection (%s)", err or "closed");
	else
		unreachable(err or "connection closed"); -- before waking anyone: the retry is set
	end
	lost(sent, "tokenauthd closed it: " .. (err or "closed"));
end

function listeners.onreadtimeout(c) -- luacheck: ignore 212/c
	return true; -- an idle connection stays open
end

-- ask sends one request line and waits for its answer. It returns true or
-- false, or nil and an error when there is no answer.
local function ask(line)
	if unloaded then
		-- A session may still hold a SASL handler of this instance.
		return nil, "the module was unloaded";
	end
	if not async.ready() then
		-- Waiting here would freeze the whole server.
		return nil, "tokenauthd cannot be asked outside an async runner";
	end
	local wait, done = async.waiter();
	local req = { line = line, done = done };
	req.timer = module:add_timer(timeout, function ()
		req.timer = nil;
		if req.finished then return; end
		local err = "tokenauthd did not answer within " .. timeout .. " s";
		if unreachable_why then
			-- Not a slow daemon: none could be reached. Say why, every time.
			err = "cannot reach tokenauthd at " .. socket_path .. ": " .. tostring(unreachable_why)
				.. " (for " .. timeout .. " s)";
		end
		if req.sent then
			-- Its answer may still come: never let it be taken for another's.
			-- The requests written after it are refused too (see drop).
			drop("timeout", req, err);
		else
			finish(req, nil, err);
		end
		flush(); -- the requests never written, on a fresh connection
	end);
	table.insert(queue, req);
	flush();
	wait();
	if req.answer == nil then return nil, req.err; end
	return req.answer == "1";
end

-- field reports whether s can be sent as one field of a request.
local function field(s, last)
	if type(s) ~= "string" or s == "" then return false; end
	if s:find("[%z\r\n]") then return false; end
	if not last and s:find(":", 1, true) then return false; end
	return true;
end

--------------------------------------------------------------------------
-- The provider
--------------------------------------------------------------------------

local provider = {};

-- own_authzid reports whether a SASL authorization identity asks for
-- nothing more than the account that authenticates: none at all, its
-- username, or its bare JID on this host.
local function own_authzid(authzid, username)
	if authzid == nil or authzid == "" then return true; end
	if nodeprep(authzid) == username then return true; end
	return jid.prep(authzid) == username .. "@" .. host;
end

-- check asks whether password is a valid token for username, who asks to
-- act as authzid (nil or "": as itself). It returns true, or false and a
-- reason: "refused" (the daemon said no, or the input cannot be a token),
-- "invalid-authzid" (authzid names another account) or "unavailable" (no
-- answer).
local function check(username, password, authzid)
	if not field(username) then
		module:log("info", "Login refused for an invalid username");
		return false, "refused";
	end
	if not field(password, true) then
		-- Never sent: the line protocol cannot carry it.
		module:log("info", "Login refused for %s@%s: the password contains a newline, carriage return or NUL", username, host);
		return false, "refused";
	end
	if not own_authzid(authzid, username) then
		-- Never sent: a token cannot let one account act as another, and
		-- sending it would use it up.
		module:log("info", "Login refused for %s@%s: its SASL authorization identity names another account", username, host);
		return false, "invalid-authzid";
	end
	local line = "auth:" .. username .. ":" .. host .. ":" .. password .. "\n";
	if #line > max_line + 1 then
		module:log("info", "Login refused for %s@%s: the password is too long", username, host);
		return false, "refused";
	end
	local ok, err = ask(line);
	if ok == nil then
		module:log("warn", "Login refused for %s@%s: %s", username, host, err);
		return false, "unavailable";
	elseif not ok then
		module:log("info", "Login refused for %s@%s: tokenauthd refused the token", username, host);
		return false, "refused";
	end
	module:log("debug", "Login accepted for %s@%s", username, host);
	return true;
end

function provider.test_password(username, password)
	if check(username, password) then return true; end
	return nil, "Auth failed. Invalid username or token.";
end

function provider.user_exists(username)
	if not field(username) then return nil, "Invalid username"; end
	local ok, err = ask("isuser:" .. username .. ":" .. host .. "\n");
	if ok == nil then
		module:log("warn", "Cannot tell whether %s@%s exists: %s", username, host, err);
		return nil, err;
	elseif not ok then
		return nil, "Auth failed. Invalid username";
	end
	return true;
end

-- What a token-only provider cannot do: passwords are one-time tokens
-- minted by the application, which owns the accounts.
for method, why in pairs({
	get_password = "Passwords are one-time tokens checked by tokenauthd";
	set_password = "Changing passwords is not supported: tokens are minted by the application";
	create_user = "Account registration is not supported: accounts belong to the application";
	delete_user = "Account deletion is not supported: accounts belong to the application";
}) do
	provider[method] = function () return nil, why; end
end

function provider.users()
	return function () return nil; end -- accounts are not listed here
end

-- The X-TOKEN mechanism reads PLAIN's message ("authzid\0authcid\0token")
-- and asks the profile's tokenauthd_token backend (called as PLAIN calls
-- plain_test in Prosody 13: self, username, password, realm, authzid), which
-- answers true, or false and "refused", "invalid-authzid" or "unavailable".
-- It is registered once per process and must not hold on to this module
-- instance: a reload gets a new one.
local function x_token(self, message)
	if not message then return "failure", "malformed-request"; end
	local authzid, authcid, password = message:match("^([^%z]*)%z([^%z]+)%z([^%z]+)");
	if not authzid then return "failure", "malformed-request"; end
	authcid, password = saslprep(authcid), saslprep(password);
	if not authcid or authcid == "" or not password or password == "" then
		return "failure", "malformed-request", "Invalid username or token.";
	end
	authcid = nodeprep(authcid);
	if not authcid or authcid == "" then
		return "failure", "malformed-request", "Invalid username or token.";
	end
	local backend = self.profile.tokenauthd_token;
	if type(backend) ~= "function" then
		return "failure", "temporary-auth-failure";
	end
	self.username = authcid;
	local ok, why = backend(self, authcid, password, self.realm, authzid);
	if ok then return "success"; end
	if why == "unavailable" then
		return "failure", "temporary-auth-failure", "The token service is not answering; try again.";
	elseif why == "invalid-authzid" then
		return "failure", "invalid-authzid", "A token logs in only the account it was minted for.";
	end
	return "failure", "not-authorized", "Unable to authorize you with the token you sent.";
end

-- Registrations are process-wide, cannot be undone and pile up: register
-- X-TOKEN only if no earlier load (another host, or before a reload) did.
local function x_token_registered()
	local probe = sasl.new(host, { tokenauthd_token = true });
	return probe:mechanisms()["X-TOKEN"] ~= nil;
end
if not x_token_registered() then
	sasl.registerMechanism("X-TOKEN", { "tokenauthd_token" }, x_token);
end

-- Prosody 13 passes PLAIN's authzid to plain_test after the realm; 0.12
-- stops at the realm (authzid is nil there).
function provider.get_sasl_handler()
	return sasl.new(host, {
		plain_test = function (_, username, password, _, authzid)
			return check(username, password, authzid), true;
		end;
		tokenauthd_token = function (_, username, password, _, authzid)
			return check(username, password, authzid);
		end;
	});
end

function module.unload()
	unloaded = true;
	drop("module unloaded");
	if retry_timer then retry_timer:stop(); retry_timer = nil; end
	while queue[1] do
		finish(queue[1], nil, "the module was unloaded");
	end
end

module:log("debug", "Using tokenauthd at %s (timeout %g s)", socket_path, timeout);
module:provides("auth", provider);
