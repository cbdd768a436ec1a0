-- Included by debian.cfg.lua, as Debian's conf.d/localhost.cfg.lua is.
VirtualHost "localhost"
