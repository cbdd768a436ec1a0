-- Prosody 0.12 or 13 with tokenauthd: the lines that matter, in a complete
-- configuration that `prosodyctl --config FILE check config` accepts.
-- Merge them into /etc/prosody/prosody.cfg.lua.

-- Where the package puts mod_auth_tokenauthd.lua (a copy from the source
-- tree: the directory it was copied to).
plugin_paths = { "/usr/share/tokenauthd/prosody" }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "dialback"; "disco";
	"carbons"; "pep"; "private"; "blocklist"; "vcard4"; "vcard_legacy";
	"version"; "uptime"; "time"; "ping"; "register"; "admin_adhoc";
}

-- Clients must use TLS before they log in: tokens are passwords, and
-- Prosody would otherwise offer X-TOKEN on unencrypted streams.
c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false

-- Users log in with tokens checked by tokenauthd. The token secrets and
-- OTP seeds live in tokenauthd's configuration, not here.
authentication = "tokenauthd"
tokenauthd_socket = "/run/tokenauthd/tokenauthd.sock"  -- the default
tokenauthd_timeout = 2                                  -- seconds, the default

-- Tokens are one-time passwords: accounts belong to your application.
allow_registration = false

log = {
	info = "/var/log/prosody/prosody.log";
	error = "/var/log/prosody/prosody.err";
}
pidfile = "/run/prosody/prosody.pid"

-- Prosody finds example.org's certificate and key in /etc/prosody/certs/
-- (example.org.crt, example.org.key): copy your CA's there, or make a
-- self-signed pair with `prosodyctl cert generate example.org` and
-- `prosodyctl --root cert import /var/lib/prosody`.
VirtualHost "example.org"
