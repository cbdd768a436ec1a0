-- Prosody with tokenauthd's module, from tokenauthd's package: modelled on
-- the README's example configuration.
plugin_paths = { "/usr/share/tokenauthd/prosody" }

modules_enabled = {
	"roster"; "saslauth"; "tls"; "dialback"; "disco";
	"carbons"; "pep"; "private"; "blocklist"; "vcard4"; "vcard_legacy";
	"version"; "uptime"; "time"; "ping"; "register"; "admin_adhoc";
}

c2s_require_encryption = true
s2s_require_encryption = true
s2s_secure_auth = false

authentication = "tokenauthd"
tokenauthd_socket = "/run/tokenauthd/tokenauthd.sock"
tokenauthd_timeout = 2

allow_registration = false

log = {
	info = "/var/log/prosody/prosody.log";
	error = "/var/log/prosody/prosody.err";
}
pidfile = "/run/prosody/prosody.pid"

VirtualHost "example.org"

Component "conference.example.org" "muc"
