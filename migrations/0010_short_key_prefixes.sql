-- Custom migration: API key prefixes shrink from 10 to 7 characters (issue 15, item 8). Ten
-- characters of a short operator key left too little to guess; seven still tell keys apart in
-- `keys list` (ar_ + 4 random characters of a minted key) and match what new keys store.
UPDATE api_keys SET prefix = left(prefix, 7) WHERE length(prefix) > 7;
