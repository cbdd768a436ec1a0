-- tokenauthd doctor: reads a prosody.cfg.lua with Prosody's own
-- configuration loader (core.configmanager), as prosodyctl does, and
-- prints as JSON what doctor checks: the global settings it needs, and
-- for each host its kind, the modules it sets, and a few options. Values
-- of other types than strings, numbers, booleans and lists of strings are
-- left out; nothing else of the file is printed, and an error is reduced
-- to its line number.
--
-- Set before it runs: DOCTOR_SOURCEDIR (Prosody's CFG_SOURCEDIR) and
-- DOCTOR_CONFIG (the file).
--
-- doctor runs it as Prosody's user, never as root: the configuration is
-- Lua, and runs with the whole of Lua. Every file the loader opens and
-- every directory it lists (Include's wildcards) is printed at once on a
-- line of its own, "file" or "dir" and the path as a JSON string, before
-- what the file holds runs: doctor checks who can write each, and code in
-- a file cannot take back the line that named it. The result is the last
-- line, a JSON object.

local sourcedir, config_file = DOCTOR_SOURCEDIR, DOCTOR_CONFIG

local function json_string(s)
	return '"' .. s:gsub('[%c"\\\128-\255]', function(c)
		local b = c:byte()
		if c == '"' then return '\\"' end
		if c == "\\" then return "\\\\" end
		if b >= 128 then return c end
		return string.format("\\u%04x", b)
	end) .. '"'
end

local stdout = io.stdout
local function record(kind, path)
	if type(path) == "string" then
		stdout:write(kind, " ", json_string(path), "\n")
		stdout:flush()
	end
end
-- Before Prosody's modules load: configmanager keeps its own dofile.
local open, dofile_, loadfile_ = io.open, dofile, loadfile
io.open = function(path, ...) record("file", path); return open(path, ...) end
dofile = function(path, ...) record("file", path); return dofile_(path, ...) end
loadfile = function(path, ...) record("file", path); return loadfile_(path, ...) end

-- Absolute entries only, as prosodyctl keeps them: Lua's defaults look in
-- the working directory ("./?.lua"), which doctor must not take code
-- from.
local function absolute(paths)
	return (paths:gsub("[^;]+;?", function(p) if p:sub(1, 1) ~= "/" then return "" end end):gsub(";;+", ";"))
end
package.path = absolute(sourcedir .. "/?.lua;" .. package.path)
package.cpath = absolute(sourcedir .. "/?.so;" .. package.cpath)
-- Prosody 13 names its libraries prosody.*, and ships a loader that
-- maps those names to its tree.
if not pcall(require, "prosody.loader") then
	pcall(require, "loader")
end

local ok_lfs, lfs = pcall(require, "lfs")
if ok_lfs and type(lfs) == "table" and lfs.dir then
	local dir = lfs.dir
	lfs.dir = function(path, ...) record("dir", path); return dir(path, ...) end
end

local ok_cm, configmanager = pcall(require, "core.configmanager")

local out = {}
local function emit(s) out[#out + 1] = s end

local function json_value(v)
	local t = type(v)
	if t == "string" then return json_string(v) end
	if t == "boolean" then return tostring(v) end
	if t == "number" then
		if v ~= v or v == math.huge or v == -math.huge then return nil end
		if math.type and math.type(v) == "integer" then return string.format("%d", v) end
		return string.format("%.17g", v)
	end
	if t == "table" then
		-- A list of strings, in its order, or a set (as util.set gives
		-- one): its members, sorted.
		local items = {}
		if #v > 0 then
			for i, e in ipairs(v) do
				if i > 10000 then break end
				if type(e) == "string" then items[#items + 1] = e end
			end
		else
			local n = 0
			for k, e in pairs(v) do
				n = n + 1
				if n > 10000 then break end
				if type(k) == "string" and e == true then items[#items + 1] = k end
			end
			table.sort(items)
		end
		local parts = {}
		for i, e in ipairs(items) do parts[i] = json_string(e) end
		return "[" .. table.concat(parts, ",") .. "]"
	end
	return nil
end

local function json_object(fields)
	local parts = {}
	for _, kv in ipairs(fields) do
		local v = json_value(kv[2])
		if v then parts[#parts + 1] = json_string(kv[1]) .. ":" .. v end
	end
	return "{" .. table.concat(parts, ",") .. "}"
end

if not ok_cm then
	emit('{"ok":false,"error":"cannot load Prosody\'s configmanager"}')
	print(table.concat(out))
	return
end

local ok, level, err = configmanager.load(config_file)
if not ok then
	local line = tostring(err):match(":(%d+):")
	emit(json_object({ { "ok", false }, { "error", level }, { "line", line and tonumber(line) } }))
	print(table.concat(out))
	return
end

local config = configmanager.getconfig()
local global = rawget(config, "*") or {}

-- The options read for each host: its own value, else the global one.
local host_options = {
	"authentication", "tokenauthd_socket", "tokenauthd_timeout",
	"external_auth_command", "external_auth_protocol", "external_auth_processes",
	"sasl2_fast_token_ttl", "oauth2_refresh_token_ttl",
}

local hosts = {}
for name in pairs(config) do
	if name ~= "*" and type(name) == "string" then hosts[#hosts + 1] = name end
end
table.sort(hosts)

local host_json = {}
for _, name in ipairs(hosts) do
	local h = rawget(config, name)
	local fields = {
		{ "name", name },
		{ "component", rawget(h, "component_module") ~= nil },
		{ "enabled", rawget(h, "enabled") ~= false },
		{ "modules_enabled", rawget(h, "modules_enabled") },
		{ "modules_disabled", rawget(h, "modules_disabled") },
	}
	local opts = {}
	for _, key in ipairs(host_options) do
		local v = rawget(h, key)
		if v == nil then v = rawget(global, key) end
		opts[#opts + 1] = { key, v }
	end
	host_json[#host_json + 1] = json_object(fields):sub(1, -2) ..
		(#fields > 0 and "," or "") .. '"options":' .. json_object(opts) .. "}"
end

emit('{"ok":true,"global":')
emit(json_object({
	{ "plugin_paths", rawget(global, "plugin_paths") },
	{ "installer_plugin_path", rawget(global, "installer_plugin_path") },
	{ "data_path", rawget(global, "data_path") },
	{ "modules_enabled", rawget(global, "modules_enabled") },
	{ "modules_disabled", rawget(global, "modules_disabled") },
}))
emit(',"hosts":[' .. table.concat(host_json, ",") .. "]}")
print(table.concat(out))
