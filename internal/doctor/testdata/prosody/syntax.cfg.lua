-- A syntax error on line 3.
authentication = "tokenauthd"
VirtualHost "example.org" ==
