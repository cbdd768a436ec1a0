-- Included by include.cfg.lua.
VirtualHost "example.org"
	authentication = "tokenauthd"
	modules_enabled = { "sasl2_fast" }
