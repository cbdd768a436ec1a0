-- Prosody 13 with prosody-modules' SASL2 and FAST, and OAuth2 on one host
-- only.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "sasl2"; "sasl2_bind2"; "sasl2_fast" }
authentication = "tokenauthd"

VirtualHost "example.org"
	modules_enabled = { "http_oauth2" }
	oauth2_refresh_token_ttl = 86400
