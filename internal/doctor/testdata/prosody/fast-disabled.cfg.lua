-- FAST enabled globally, but disabled for the one host.
plugin_paths = { "/usr/share/tokenauthd/prosody" }
modules_enabled = { "roster"; "saslauth"; "tls"; "disco"; "ping"; "sasl2"; "sasl2_fast" }
authentication = "tokenauthd"
sasl2_fast_token_ttl = 3600

VirtualHost "example.org"
	modules_disabled = { "sasl2_fast" }
