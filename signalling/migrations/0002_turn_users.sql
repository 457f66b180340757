-- Long-term TURN users for sotto-relay (`auth_database`), which loads this
-- table into memory at start and on SIGHUP. Keys, not passwords: hex of
-- MD5(username ":" realm ":" password) (RFC 5389/5766 clients) and of
-- SHA-256 of the same (RFC 8489 PASSWORD-ALGORITHM SHA-256; NULL when only
-- the MD5 key is known, e.g. imported from a coturn `0x` users file).
CREATE TABLE turn_users (
    realm      TEXT NOT NULL,
    username   TEXT NOT NULL,
    key_md5    TEXT NOT NULL,
    key_sha256 TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (realm, username)
);
