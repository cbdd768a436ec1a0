-- Prosody as Debian 12 installs it, in short: its own password store,
-- tokenauthd not in use.
admins = { }
plugin_paths = { "/usr/local/lib/prosody/modules" }
modules_enabled = {
	"disco"; "roster"; "saslauth"; "tls"; "blocklist"; "bookmarks"; "carbons";
	"dialback"; "limits"; "pep"; "private"; "smacks"; "vcard4"; "vcard_legacy";
	"csi_simple"; "invites"; "invites_adhoc"; "invites_register"; "ping";
	"register"; "time"; "uptime"; "version"; "admin_adhoc"; "admin_shell"; "posix";
}
modules_disabled = { }
pidfile = "/run/prosody/prosody.pid";
s2s_secure_auth = true
limits = {
	c2s = { rate = "10kb/s"; };
	s2sin = { rate = "30kb/s"; };
}
authentication = "internal_hashed"
archive_expires_after = "1w"
log = {
	info = "/var/log/prosody/prosody.log";
	error = "/var/log/prosody/prosody.err";
	{ levels = { "error" }; to = "syslog"; };
}
certificates = "certs"
VirtualHost "localhost"
Include "conf.d/*.cfg.lua"
