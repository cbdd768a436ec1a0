-- Unit tests of prosody/mod_auth_tokenauthd.lua with Prosody's own
-- util.async and util.sasl, and a scripted daemon connection: the module's
-- socket, event-loop and timer calls are replaced by fakes the tests drive.
--
-- usage: lua5.4 mod_auth_tokenauthd_test.lua PATH/TO/mod_auth_tokenauthd.lua [PROSODY_LIB]
-- PROSODY_LIB is Prosody's source directory, 0.12's or 13's
-- (default /usr/lib/prosody). Prints one line per test; exits 1 if any failed.

local module_path = assert(arg[1], "usage: mod_auth_tokenauthd_test.lua MODULE [PROSODY_LIB]");
local lib = arg[2] or "/usr/lib/prosody";
package.path = lib .. "/?.lua;" .. package.path;
package.cpath = lib .. "/?.so;" .. package.cpath;
-- Prosody 13's libraries require each other as prosody.util.*: its launcher
-- first runs the loader that resolves those names. 0.12 has no loader.
local prosody_loader = loadfile(lib .. "/loader.lua");
if prosody_loader then prosody_loader("loader"); end

local async = require "util.async";
local sasl = require "util.sasl";

-- Count X-TOKEN registrations: there must be one per process, however
-- often the module is loaded.
local registrations = 0;
local register = sasl.registerMechanism;
sasl.registerMechanism = function (name, ...)
	if name == "X-TOKEN" then registrations = registrations + 1; end
	return register(name, ...);
end

-- The fake socket library: connect answers what connect_result says.
local connect_result = { 1 };
package.loaded["socket.unix"] = {
	stream = function ()
		local s = {};
		function s.settimeout() end
		function s.connect(_, path) s.path = path; return table.unpack(connect_result); end
		function s.close() s.closed = true; end
		return s;
	end;
};

-- The fake event loop: every wrapped connection is recorded.
local conns;
local fail_next_write = false;
package.loaded["net.server"] = {
	wrapclient = function (sock, path, _, listeners)
		local c = { sock = sock, path = path, written = {}, listeners = listeners };
		function c.write(self, data)
			if fail_next_write then -- as net.server does on a failed write
				fail_next_write = false;
				self.closed = true;
				self.listeners.ondisconnect(self, "broken pipe");
				return nil, "broken pipe";
			end
			table.insert(self.written, data);
			return #data;
		end
		function c.close(self)
			if self.closed then return; end
			self.closed = true;
			self.listeners.ondisconnect(self); -- as net.server does
		end
		function c.incoming(self, data) return self.listeners.onincoming(self, data); end
		function c.drop(self, err) -- the daemon goes away
			self.closed = true;
			return self.listeners.ondisconnect(self, err);
		end
		table.insert(conns, c);
		return c;
	end;
};

local function new_module(options)
	local m = { host = "example.org", timers = {}, logs = {} };
	function m.get_option_string(_, k, d) return options[k] or d; end
	function m.get_option_number(_, k, d) return options[k] or d; end
	function m.log(_, level, fmt, ...) table.insert(m.logs, { level, fmt:format(...) }); end
	function m.add_timer(_, delay, fn)
		local t = { delay = delay, fn = fn };
		function t.stop(self) self.stopped = true; end
		table.insert(m.timers, t);
		return t;
	end
	function m.provides(_, kind, p) m.provided_kind, m.provider = kind, p; end
	return m;
end

local TIMEOUT = 5; -- distinct from the reconnection delays (< 1 s)

local loaded = {}; -- every module instance, for the log check

-- load loads a fresh instance of the module; its require is require_fn
-- if given.
local function load(options, require_fn)
	conns = {};
	connect_result = { 1 };
	options = options or {};
	if options.tokenauthd_timeout == nil then options.tokenauthd_timeout = TIMEOUT; end
	local m = new_module(options);
	local env = setmetatable({ module = m, require = require_fn }, { __index = _G });
	assert(loadfile(module_path, "t", env))();
	assert(m.provided_kind == "auth", "the module provides no auth provider");
	table.insert(loaded, m);
	return m, m.provider;
end

-- fire runs the live timers of the given delay (request timeouts: TIMEOUT;
-- reconnections: anything shorter), once each.
local function fire(m, which)
	local n, live = 0, table.move(m.timers, 1, #m.timers, 1, {});
	for _, t in ipairs(live) do
		local match = (which == "timeout" and t.delay == TIMEOUT) or (which == "retry" and t.delay < TIMEOUT);
		if match and not t.stopped and not t.fired then
			t.fired = true;
			t.fn(os.time());
			n = n + 1;
		end
	end
	return n;
end

-- spawn runs f in an async runner, as Prosody runs a session's stanzas.
local function spawn(f, ...)
	local args = table.pack(...);
	local res = { done = false };
	local r = async.runner(function ()
		res.values = table.pack(f(table.unpack(args, 1, args.n)));
		res.done = true;
	end);
	r:run(true);
	return res;
end

local failures = 0;
local current;
local function check(cond, fmt, ...)
	if not cond then
		failures = failures + 1;
		print(("FAIL %s: " .. fmt):format(current, ...));
	end
	return cond;
end
-- answer returns the i-th value a spawned call returned, or nil while it
-- still waits.
local function answer(res, i)
	return res.values and res.values[i];
end
local function eq(got, want, what)
	return check(got == want, "%s = %q, want %q", what, tostring(got), tostring(want));
end

local tests = {};
local function test(name, f) table.insert(tests, { name, f }); end

test("a token is sent with the user and the VirtualHost, answered in order", function ()
	local m, p = load({ tokenauthd_socket = "/run/x.sock" });
	local a = spawn(p.test_password, "alice", "12345678 c2ln");
	local b = spawn(p.test_password, "bob", "87654321 c2ln");
	eq(#conns, 1, "connections");
	local c = conns[1];
	eq(c.sock.path, "/run/x.sock", "socket path");
	eq(c.written[1], "auth:alice:example.org:12345678 c2ln\n", "first request");
	eq(c.written[2], "auth:bob:example.org:87654321 c2ln\n", "second request");
	eq(a.done or b.done, false, "answered before the daemon spoke");
	c:incoming("0");
	eq(a.done, false, "answered on half a line");
	c:incoming("\r\n1\n"); -- a CR before the newline is ignored
	eq(a.values[1], nil, "alice's answer"); -- refused: nil, message
	eq(b.values[1], true, "bob's answer");
	eq(fire(m, "timeout"), 0, "timeouts left running");
end)

-- logged reports whether a log line of the level holds text.
local function logged(m, level, text)
	for _, l in ipairs(m.logs) do
		if l[1] == level and l[2]:find(text, 1, true) then return true; end
	end
	return false;
end

test("a timeout refuses, closes the connection, and never resends what was written to it", function ()
	local m, p = load();
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	local c1 = conns[1];
	local first = m.timers[#m.timers];
	local hx = p.get_sasl_handler();
	hx:select("X-TOKEN");
	local b = spawn(hx.process, hx, "\0bob\0" .. "22222222 Yg==");
	local hp = p.get_sasl_handler();
	hp:select("PLAIN");
	local c = spawn(hp.process, hp, "\0carol\0" .. "33333333 Yw==");
	eq(#c1.written, 3, "requests written");
	first.fired = true;
	first.fn(os.time());
	eq(a.done, true, "alice refused at her timeout");
	eq(a.values[1], nil, "alice's answer");
	check(logged(m, "warn", "alice@example.org: tokenauthd did not answer within 5 s"), "the timeout is not logged as a warning");
	eq(c1.closed, true, "the connection of the unanswered request closed");
	-- The daemon may have read bob's and carol's requests and recorded
	-- their tokens: sent again, they would be refused as replayed.
	eq(b.values[1], "failure", "bob (X-TOKEN, written before the timeout)");
	eq(b.values[2], "temporary-auth-failure", "bob's condition");
	eq(c.values[1], "failure", "carol (PLAIN, written before the timeout)");
	eq(c.values[2], "not-authorized", "carol's condition");
	check(logged(m, "warn", "carol@example.org: the connection to tokenauthd closed (timeout)"), "carol's real reason is not logged");
	eq(#conns, 1, "connections: something was sent again");
	c1:incoming("1\n1\n1\n"); -- late answers on the old connection
	local d = spawn(p.test_password, "dave", "44444444 ZA==");
	eq(#conns, 2, "connections");
	eq(table.concat(conns[2].written), "auth:dave:example.org:44444444 ZA==\n", "the fresh connection carries dave's request only");
	conns[2]:incoming("1\n");
	eq(d.values[1], true, "dave's answer");
	eq(fire(m, "timeout"), 0, "timeouts left running");
end)
test("an unanswered request not yet sent is refused without closing anything", function ()
	local m, p = load();
	connect_result = { nil, "No such file or directory" };
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	eq(#conns, 0, "connections");
	eq(fire(m, "timeout"), 1, "timeouts");
	eq(a.values[1], nil, "alice's answer");
	local warned = 0;
	for _, l in ipairs(m.logs) do
		if l[1] == "warn" and l[2]:find("Cannot reach", 1, true) then warned = warned + 1; end
	end
	eq(warned, 1, "warnings about the unreachable daemon");
end)

test("a login refused while the daemon cannot be reached says why, every time", function ()
	local m, p = load();
	connect_result = { nil, "Permission denied" };
	for i, user in ipairs({ "alice", "bob" }) do
		local a = spawn(p.test_password, user, "11111111 YQ==");
		eq(fire(m, "timeout"), 1, "timeouts");
		eq(a.values[1], nil, user .. "'s answer");
		local said = 0;
		for _, l in ipairs(m.logs) do
			if l[1] == "warn" and l[2]:find(": cannot reach tokenauthd at ", 1, true) and l[2]:find("Permission denied", 1, true) then
				said = said + 1;
			end
		end
		eq(said, i, "refusals that give the cause");
		check(not logged(m, "warn", "did not answer within"), "an unreachable daemon is called slow");
	end
	connect_result = { 1 };
end)

test("the daemon down: retries while a login waits, then answers", function ()
	local m, p = load();
	connect_result = { nil, "No such file or directory" };
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	eq(fire(m, "retry"), 1, "retries scheduled");
	eq(#conns, 0, "connections while down");
	connect_result = { 1 };
	eq(fire(m, "retry"), 1, "retries scheduled after a failed one");
	eq(#conns, 1, "connections once up");
	eq(conns[1].written[1], "auth:alice:example.org:11111111 YQ==\n", "request");
	conns[1]:incoming("1\n");
	eq(a.values[1], true, "alice's answer");
end)

test("the daemon goes away mid-request: a written request is refused, a later one waits", function ()
	local m, p = load();
	local h = p.get_sasl_handler();
	h:select("X-TOKEN");
	local a = spawn(h.process, h, "\0alice\0" .. "11111111 YQ==");
	eq(#conns[1].written, 1, "alice's request written");
	connect_result = { nil, "Connection refused" };
	conns[1]:drop("closed");
	-- The daemon may have judged and recorded alice's token before dying.
	eq(a.values[2], "temporary-auth-failure", "alice, written before the daemon went away");
	local b = spawn(p.test_password, "bob", "22222222 Yg==");
	eq(b.done, false, "bob refused while the daemon is down");
	connect_result = { 1 };
	eq(fire(m, "retry"), 1, "retries");
	eq(#conns, 2, "connections");
	eq(table.concat(conns[2].written), "auth:bob:example.org:22222222 Yg==\n", "the requests on the fresh connection");
	conns[2]:incoming("1\n");
	eq(b.values[1], true, "bob's answer");
end)
test("an idle connection closed by the daemon is reopened on the next request", function ()
	local m, p = load();
	local a = spawn(p.user_exists, "alice");
	conns[1]:incoming("1\n");
	eq(a.values[1], true, "user_exists");
	conns[1]:drop("closed");
	eq(fire(m, "retry"), 0, "retries while idle");
	for _, l in ipairs(m.logs) do
		check(l[1] ~= "warn", "warning while idle: %s", l[2]);
	end
	local b = spawn(p.user_exists, "bob");
	eq(#conns, 2, "connections");
	eq(conns[2].written[1], "isuser:bob:example.org\n", "request");
	conns[2]:incoming("0\n");
	eq(b.values[1], nil, "bob exists");
end)

test("a write that fails: that request is refused, the unwritten ones are sent on reconnection", function ()
	local m, p = load();
	connect_result = { nil, "connection refused" };
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	local b = spawn(p.test_password, "bob", "22222222 Yg==");
	connect_result = { 1 };
	fail_next_write = true; -- the daemon is gone by the time we write
	eq(fire(m, "retry"), 1, "retries");
	eq(#conns, 1, "connections");
	eq(conns[1].closed, true, "the broken connection closed");
	-- Bytes handed to the event loop may have reached the daemon.
	eq(a.done, true, "alice, whose write failed, answered");
	eq(a.values[1], nil, "alice's answer");
	eq(b.done, false, "bob, never written, answered");
	eq(fire(m, "retry"), 1, "retries after the broken connection");
	eq(#conns, 2, "connections");
	eq(table.concat(conns[2].written), "auth:bob:example.org:22222222 Yg==\n", "requests sent again");
	conns[2]:incoming("1\n");
	eq(b.values[1], true, "bob's answer");
end)
test("a malformed or unasked-for answer closes the connection", function ()
	local _, p = load();
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	local b = spawn(p.test_password, "bob", "22222222 Yg==");
	conns[1]:incoming("yes\n");
	eq(a.done, true, "alice answered");
	eq(a.values[1], nil, "alice's answer");
	eq(conns[1].closed, true, "connection closed after a malformed answer");
	eq(b.done, true, "bob, written to the closed connection, answered");
	eq(b.values[1], nil, "bob's answer");
	local c = spawn(p.test_password, "carol", "33333333 Yw==");
	eq(table.concat(conns[2].written), "auth:carol:example.org:33333333 Yw==\n", "the fresh connection's requests");
	conns[2]:incoming("1\n");
	eq(c.values[1], true, "carol's answer");
	conns[2]:incoming("1\n"); -- nobody asked
	eq(conns[2].closed, true, "connection closed after an unasked-for answer");
end)
test("passwords and usernames the line protocol cannot carry are never sent", function ()
	local m, p = load();
	for _, pw in ipairs({ "1234 a\nauth:x:y:z", "1234 a\rb", "1234 a\0b", "" }) do
		local a = spawn(p.test_password, "alice", pw);
		eq(a.done, true, ("refused at once: %q"):format(pw));
		eq(a.values[1], nil, ("answer for %q"):format(pw));
	end
	for _, user in ipairs({ "al:ice", "al\nice", "" }) do
		local a = spawn(p.test_password, user, "11111111 YQ==");
		eq(a.values[1], nil, ("answer for user %q"):format(user));
		local b = spawn(p.user_exists, user);
		eq(b.values[1], nil, ("user_exists for %q"):format(user));
	end
	eq(#conns, 0, "connections");
	eq(#m.timers, 0, "timers");
end)

test("outside an async runner: refused, never blocking", function ()
	local _, p = load();
	local ok, err = p.test_password("alice", "11111111 YQ==");
	eq(ok, nil, "answer");
	check(err ~= nil, "no error message");
	eq(p.user_exists("alice"), nil, "user_exists");
	eq(#conns, 0, "connections");
end)

test("accounts cannot be changed here", function ()
	local _, p = load();
	for _, f in ipairs({ "set_password", "create_user", "delete_user" }) do
		local ok, err = p[f]("alice", "pw");
		eq(ok, nil, f);
		check(type(err) == "string" and #err > 10, "%s gives no clear error", f);
	end
	eq(p.users()(), nil, "users listed");
	eq(#conns, 0, "connections");
end)

test("SASL: PLAIN and X-TOKEN, nodeprepped, temporary failure on timeout", function ()
	local m, p = load();
	local mechs = p.get_sasl_handler():mechanisms();
	check(mechs["PLAIN"] and mechs["X-TOKEN"], "mechanisms offered: %s", next(mechs));

	local h = p.get_sasl_handler();
	h:select("X-TOKEN");
	local a = spawn(h.process, h, "\0Alice\0" .. "11111111 YQ==");
	eq(conns[1].written[1], "auth:alice:example.org:11111111 YQ==\n", "X-TOKEN request");
	conns[1]:incoming("1\n");
	eq(a.values[1], "success", "X-TOKEN accepted");
	eq(h.username, "alice", "authenticated user");

	h = p.get_sasl_handler();
	h:select("X-TOKEN");
	a = spawn(h.process, h, "\0alice\0" .. "22222222 Yg==");
	conns[1]:incoming("0\n");
	eq(a.values[1], "failure", "X-TOKEN refused");
	eq(a.values[2], "not-authorized", "X-TOKEN refusal");

	h = p.get_sasl_handler();
	h:select("X-TOKEN");
	a = spawn(h.process, h, "\0alice\0" .. "33333333 Yw==");
	eq(fire(m, "timeout"), 1, "timeouts");
	eq(a.values[2], "temporary-auth-failure", "X-TOKEN without an answer");

	h = p.get_sasl_handler();
	h:select("PLAIN");
	a = spawn(h.process, h, "\0bob\0" .. "44444444 ZA==");
	eq(conns[2].written[1], "auth:bob:example.org:44444444 ZA==\n", "PLAIN request");
	conns[2]:incoming("1\n");
	eq(a.values[1], "success", "PLAIN accepted");

	h = p.get_sasl_handler();
	h:select("X-TOKEN");
	a = spawn(h.process, h, "no NULs here");
	eq(a.values[2], "malformed-request", "X-TOKEN malformed");
end)

-- only_names returns a require that knows Prosody's libraries only under
-- Prosody 13's names (prosody.util.*: new = true) or only under 0.12's
-- (util.*), as a Prosody past the transition or 0.12 would, and the list of
-- names asked for.
local function only_names(new)
	local asked = {};
	return function (name)
		table.insert(asked, name);
		if name == "socket.unix" then return require(name); end -- LuaSocket's
		local old = name:match("^prosody%.(.+)$");
		if new and not old then error("module '" .. name .. "' not found: only prosody.* names", 2); end
		if not new and old then error("module '" .. name .. "' not found: no prosody.* names", 2); end
		return require(old or name);
	end, asked;
end

test("libraries are required by Prosody 13's names where they exist, else by 0.12's", function ()
	for _, new in ipairs({ true, false }) do
		local which = new and "prosody.* names only" or "util.* names only";
		local require_fn, asked = only_names(new);
		local ok, m, p = pcall(load, nil, require_fn);
		if check(ok, "%s: the module does not load: %s", which, tostring(m)) then
			local a = spawn(p.test_password, "alice", "11111111 YQ==");
			eq(conns[1] and conns[1].written[1], "auth:alice:example.org:11111111 YQ==\n", which .. ": request");
			conns[1]:incoming("1\n");
			eq(a.values[1], true, which .. ": alice's answer");
			local h = p.get_sasl_handler();
			check(h:mechanisms()["X-TOKEN"], "%s: X-TOKEN not offered", which);
			eq(fire(m, "timeout"), 0, which .. ": timeouts left running");
		end
		local named = {};
		for _, name in ipairs(asked) do named[name] = true; end
		for _, lib_name in ipairs({ "util.async", "net.server", "util.sasl", "util.encodings", "util.jid" }) do
			check(named[(new and "prosody." or "") .. lib_name], "%s: %s was not asked for", which, lib_name);
		end
	end
end)

test("SASL: an authorization identity other than the account's own is refused unsent", function ()
	local _, p = load();
	-- X-TOKEN: the account itself, by name or bare JID (any case), logs in.
	local sent = 0;
	for _, authzid in ipairs({ "", "alice", "alice@example.org", "Alice@Example.ORG" }) do
		local h = p.get_sasl_handler();
		h:select("X-TOKEN");
		local a = spawn(h.process, h, authzid .. "\0alice\0" .. "11111111 YQ==");
		sent = sent + 1;
		eq(conns[1].written[sent], "auth:alice:example.org:11111111 YQ==\n", ("X-TOKEN request with authzid %q"):format(authzid));
		conns[1]:incoming("1\n");
		eq(a.values[1], "success", ("X-TOKEN with authzid %q"):format(authzid));
	end
	-- Another account, another host, a full JID: refused, the token unused.
	for _, authzid in ipairs({ "bob", "bob@example.org", "alice@example.com", "alice@example.org/phone", "@example.org" }) do
		local h = p.get_sasl_handler();
		h:select("X-TOKEN");
		local a = spawn(h.process, h, authzid .. "\0alice\0" .. "22222222 Yg==");
		eq(answer(a, 1), "failure", ("X-TOKEN with authzid %q"):format(authzid));
		eq(answer(a, 2), "invalid-authzid", ("X-TOKEN's condition with authzid %q"):format(authzid));
	end
	eq(#conns[1].written, sent, "requests written");
	for _ = sent + 1, #conns[1].written do conns[1]:incoming("0\n"); end
	sent = #conns[1].written;

	-- PLAIN's backend, called as Prosody 13 calls it (realm, then authzid).
	local h = p.get_sasl_handler();
	local a = spawn(h.profile.plain_test, h, "alice", "33333333 Yw==", "example.org", "bob@example.org");
	eq(answer(a, 1), false, "plain_test with another account's authzid");
	eq(#conns[1].written, sent, "requests written after plain_test with another authzid");
	if #conns[1].written > sent then -- answer it: it must not be taken for the next
		conns[1]:incoming("0\n");
		sent = #conns[1].written;
	end
	a = spawn(h.profile.plain_test, h, "alice", "44444444 ZA==", "example.org", "alice@example.org");
	eq(conns[1].written[sent + 1], "auth:alice:example.org:44444444 ZA==\n", "plain_test request with its own authzid");
	conns[1]:incoming("1\n");
	eq(a.values[1], true, "plain_test with its own authzid");
	sent = sent + 1;

	-- Through this Prosody's own PLAIN, when it passes the authzid on (13).
	local seen;
	local probe = sasl.new("example.org", { plain_test = function (_, _, _, _, authzid) seen = authzid; return false, true; end });
	probe:select("PLAIN");
	probe:process("z\0u\0p");
	if seen == "z" then
		h = p.get_sasl_handler();
		h:select("PLAIN");
		a = spawn(h.process, h, "bob@example.org\0alice\0" .. "55555555 ZQ==");
		eq(answer(a, 1), "failure", "PLAIN with another account's authzid");
		eq(answer(a, 2), "not-authorized", "PLAIN's condition with another account's authzid");
		eq(#conns[1].written, sent, "requests written after PLAIN with another authzid");
		if #conns[1].written > sent then conns[1]:incoming("0\n"); end
	end
end)

test("unloading ends the requests that wait", function ()
	local m, p = load();
	local a = spawn(p.test_password, "alice", "11111111 YQ==");
	m.unload();
	eq(a.done, true, "alice answered");
	eq(a.values[1], nil, "alice's answer");
	eq(conns[1].closed, true, "connection closed");
	-- A session that got its SASL handler before the unload: its timers
	-- would never fire, so it must not wait at all.
	local b = spawn(p.test_password, "bob", "22222222 Yg==");
	eq(b.done, true, "bob answered at once after the unload");
	eq(b.values[1], nil, "bob's answer");
	eq(#conns, 1, "connections after the unload");
end)

for _, t in ipairs(tests) do
	current = t[1];
	local before = failures;
	local ok, err = pcall(t[2]);
	if not ok then
		failures = failures + 1;
		print(("FAIL %s: %s"):format(current, err));
	elseif failures == before then
		print("ok   " .. current);
	end
end

current = "no password or token is ever logged";
local before = failures;
local secrets = { "c2ln", "YQ==", "Yg==", "Yw==", "ZA==", "ZQ==", "a\nauth", "a\rb" };
for _, m in ipairs(loaded) do
	for _, l in ipairs(m.logs) do
		for _, s in ipairs(secrets) do
			check(not l[2]:find(s, 1, true), "logged: %q", l[2]);
		end
	end
end
if failures == before then print("ok   " .. current); end

current = "X-TOKEN is registered once however often the module loads";
if eq(registrations, 1, ("registrations over %d loads"):format(#loaded)) then print("ok   " .. current); end

-- Which Prosody the tests ran with: the file util.async came from.
print("util.async from " .. debug.getinfo(async.runner, "S").source);

os.exit(failures == 0 and 0 or 1);
