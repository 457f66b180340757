/*
 * Thin shim over bzrtp (Debian libbzrtp-dev 5.1.x) for Sotto's interop
 * tests and benchmarks: one context, one channel; packets bzrtp wants to
 * send are queued for the Rust side to carry; the negotiated secrets are
 * copied out of the callbacks.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <bzrtp/bzrtp.h>

#define SHIM_QUEUE 64
#define SHIM_MAX_PACKET 3072

typedef struct {
	uint16_t len;
	uint8_t data[SHIM_MAX_PACKET];
} shim_packet_t;

typedef struct {
	uint8_t self_key[32], self_salt[16], peer_key[32], peer_salt[16];
	uint8_t self_key_len, self_salt_len, peer_key_len, peer_salt_len;
	uint8_t cipher, auth_tag, hash, key_agreement, sas_algo;
	uint8_t cache_mismatch;
	int32_t verified;
	char sas[64];
	int secure;
} sotto_bzrtp_secrets_t;

typedef struct {
	bzrtpContext_t *ctx;
	uint32_t ssrc;
	shim_packet_t queue[SHIM_QUEUE];
	unsigned head, count;
	unsigned dropped;
	void *db; /* sqlite3 * of bzrtp's ZID cache, or NULL (cacheless) */
	sotto_bzrtp_secrets_t secrets;
} sotto_bzrtp_t;

/* bzrtp's ZID cache is an SQLite database that the caller opens. libbzrtp
 * already links libsqlite3, so its two entry points are looked up at run
 * time instead of adding a link dependency to the shim. */
typedef int (*sqlite3_open_v2_fn)(const char *, void **, int, const char *);
typedef int (*sqlite3_close_fn)(void *);
#define SHIM_SQLITE_OPEN_READWRITE 0x00000002
#define SHIM_SQLITE_OPEN_CREATE 0x00000004

static void *open_cache(const char *path) {
	sqlite3_open_v2_fn open_v2;
	*(void **)(&open_v2) = dlsym(RTLD_DEFAULT, "sqlite3_open_v2");
	void *db = NULL;
	if (open_v2 == NULL || open_v2(path, &db, SHIM_SQLITE_OPEN_READWRITE | SHIM_SQLITE_OPEN_CREATE, NULL) != 0) return NULL;
	int rc = bzrtp_initCache_lock(db, NULL);
	if (rc != 0 && rc != BZRTP_CACHE_SETUP && rc != BZRTP_CACHE_UPDATE) return NULL;
	return db;
}

static void close_cache(void *db) {
	sqlite3_close_fn close_fn;
	*(void **)(&close_fn) = dlsym(RTLD_DEFAULT, "sqlite3_close");
	if (db != NULL && close_fn != NULL) close_fn(db);
}

static int shim_send(void *client, const uint8_t *packet, uint16_t len) {
	sotto_bzrtp_t *s = (sotto_bzrtp_t *)client;
	if (s->count == SHIM_QUEUE || len > SHIM_MAX_PACKET) {
		s->dropped++;
		return 0;
	}
	shim_packet_t *p = &s->queue[(s->head + s->count) % SHIM_QUEUE];
	memcpy(p->data, packet, len);
	p->len = len;
	s->count++;
	return 0;
}

static void copy_key(uint8_t *dst, uint8_t *dst_len, const uint8_t *src, uint8_t len, size_t cap) {
	if (src == NULL || len > cap) {
		*dst_len = 0;
		return;
	}
	memcpy(dst, src, len);
	*dst_len = len;
}

static void copy_secrets(sotto_bzrtp_t *s, const bzrtpSrtpSecrets_t *k) {
	sotto_bzrtp_secrets_t *o = &s->secrets;
	copy_key(o->self_key, &o->self_key_len, k->selfSrtpKey, k->selfSrtpKeyLength, sizeof o->self_key);
	copy_key(o->self_salt, &o->self_salt_len, k->selfSrtpSalt, k->selfSrtpSaltLength, sizeof o->self_salt);
	copy_key(o->peer_key, &o->peer_key_len, k->peerSrtpKey, k->peerSrtpKeyLength, sizeof o->peer_key);
	copy_key(o->peer_salt, &o->peer_salt_len, k->peerSrtpSalt, k->peerSrtpSaltLength, sizeof o->peer_salt);
	o->cipher = k->cipherAlgo;
	o->auth_tag = k->authTagAlgo;
	o->hash = k->hashAlgo;
	o->key_agreement = k->keyAgreementAlgo;
	o->sas_algo = k->sasAlgo;
	o->cache_mismatch = k->cacheMismatch;
	if (k->sas != NULL) {
		strncpy(o->sas, k->sas, sizeof o->sas - 1);
		o->sas[sizeof o->sas - 1] = '\0';
	}
}

static int shim_secrets_available(void *client, const bzrtpSrtpSecrets_t *k, uint8_t part) {
	(void)part;
	copy_secrets((sotto_bzrtp_t *)client, k);
	return 0;
}

static int shim_start_srtp(void *client, const bzrtpSrtpSecrets_t *k, int32_t verified) {
	sotto_bzrtp_t *s = (sotto_bzrtp_t *)client;
	copy_secrets(s, k);
	s->secrets.verified = verified;
	s->secrets.secure = 1;
	return 0;
}

/* Algorithm lists use bzrtp's ZRTP_* codes; a count of 0 keeps the default.
 * With a cache path, bzrtp keeps its ZID and retained secrets there
 * (self_uri/peer_uri name the two ends in bzrtp's cache). */
sotto_bzrtp_t *sotto_bzrtp_new_cached(uint32_t ssrc, const uint8_t *algos, const uint8_t counts[5],
				      const char *cache_path, const char *self_uri, const char *peer_uri) {
	static const uint8_t types[5] = {ZRTP_HASH_TYPE, ZRTP_CIPHERBLOCK_TYPE, ZRTP_AUTHTAG_TYPE,
					 ZRTP_KEYAGREEMENT_TYPE, ZRTP_SAS_TYPE};
	sotto_bzrtp_t *s = (sotto_bzrtp_t *)calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	s->ssrc = ssrc;
	s->ctx = bzrtp_createBzrtpContext();
	if (s->ctx == NULL) {
		free(s);
		return NULL;
	}
	bzrtpCallbacks_t cbs;
	memset(&cbs, 0, sizeof cbs);
	cbs.bzrtp_sendData = shim_send;
	cbs.bzrtp_srtpSecretsAvailable = shim_secrets_available;
	cbs.bzrtp_startSrtpSession = shim_start_srtp;
	bzrtp_setCallbacks(s->ctx, &cbs);
	if (cache_path != NULL) {
		s->db = open_cache(cache_path);
		if (s->db == NULL) {
			bzrtp_destroyBzrtpContext(s->ctx, ssrc);
			free(s);
			return NULL;
		}
		int rc = bzrtp_setZIDCache_lock(s->ctx, s->db, self_uri, peer_uri, NULL);
		if (rc != 0 && rc != BZRTP_CACHE_SETUP) {
			bzrtp_destroyBzrtpContext(s->ctx, ssrc);
			close_cache(s->db);
			free(s);
			return NULL;
		}
	}
	/* Before bzrtp_initBzrtpContext, which builds the Hello from these
	 * lists: set afterwards, they restrict what bzrtp accepts while its
	 * Hello still offers every algorithm it has. */
	size_t off = 0;
	for (int i = 0; i < 5; i++) {
		if (counts[i] > 0 && counts[i] <= 7) {
			uint8_t list[7] = {0};
			memcpy(list, algos + off, counts[i]);
			bzrtp_setSupportedCryptoTypes(s->ctx, types[i], list, counts[i]);
		}
		off += counts[i];
	}
	if (bzrtp_initBzrtpContext(s->ctx, ssrc) != 0) {
		bzrtp_destroyBzrtpContext(s->ctx, ssrc);
		close_cache(s->db);
		free(s);
		return NULL;
	}
	bzrtp_setClientData(s->ctx, ssrc, s);
	return s;
}

sotto_bzrtp_t *sotto_bzrtp_new(uint32_t ssrc, const uint8_t *algos, const uint8_t counts[5]) {
	return sotto_bzrtp_new_cached(ssrc, algos, counts, NULL, NULL, NULL);
}

void sotto_bzrtp_sas_verified(sotto_bzrtp_t *s) { bzrtp_SASVerified(s->ctx); }

int sotto_bzrtp_start(sotto_bzrtp_t *s) { return bzrtp_startChannelEngine(s->ctx, s->ssrc); }

int sotto_bzrtp_process(sotto_bzrtp_t *s, const uint8_t *packet, uint16_t len) {
	uint8_t copy[SHIM_MAX_PACKET];
	if (len > SHIM_MAX_PACKET) return -1;
	memcpy(copy, packet, len); /* bzrtp takes a non-const buffer */
	return bzrtp_processMessage(s->ctx, s->ssrc, copy, len);
}

int sotto_bzrtp_iterate(sotto_bzrtp_t *s, uint64_t now_ms) { return bzrtp_iterate(s->ctx, s->ssrc, now_ms); }

/* Pops one queued packet into buf; returns its length, 0 if none. */
int sotto_bzrtp_pop(sotto_bzrtp_t *s, uint8_t *buf, size_t cap) {
	if (s->count == 0) return 0;
	shim_packet_t *p = &s->queue[s->head];
	if (p->len > cap) return -1;
	memcpy(buf, p->data, p->len);
	s->head = (s->head + 1) % SHIM_QUEUE;
	s->count--;
	return p->len;
}

const sotto_bzrtp_secrets_t *sotto_bzrtp_secrets(const sotto_bzrtp_t *s) { return &s->secrets; }

int sotto_bzrtp_status(sotto_bzrtp_t *s) { return bzrtp_getChannelStatus(s->ctx, s->ssrc); }

int sotto_bzrtp_self_hello_hash(sotto_bzrtp_t *s, char *out, size_t cap) {
	return bzrtp_getSelfHelloHash(s->ctx, s->ssrc, (uint8_t *)out, cap);
}

int sotto_bzrtp_set_peer_hello_hash(sotto_bzrtp_t *s, const char *hash) {
	size_t len = strlen(hash);
	uint8_t buf[128];
	if (len >= sizeof buf) return -1;
	memcpy(buf, hash, len + 1);
	return bzrtp_setPeerHelloHash(s->ctx, s->ssrc, buf, len);
}

int sotto_bzrtp_set_aux_secret(sotto_bzrtp_t *s, const uint8_t *secret, size_t len) {
	return bzrtp_setAuxiliarySharedSecret(s->ctx, secret, len);
}

int sotto_bzrtp_aux_secret_mismatch(sotto_bzrtp_t *s) { return bzrtp_getAuxiliarySharedSecretMismatch(s->ctx); }

/* A second channel (multistream) on the same bzrtp context; it can only be
 * started once the first channel is secure. The context itself is freed
 * with its last channel, whichever handle goes last. */
sotto_bzrtp_t *sotto_bzrtp_add_channel(sotto_bzrtp_t *first, uint32_t ssrc) {
	sotto_bzrtp_t *s = (sotto_bzrtp_t *)calloc(1, sizeof *s);
	if (s == NULL) return NULL;
	s->ctx = first->ctx;
	s->ssrc = ssrc;
	if (bzrtp_addChannel(s->ctx, ssrc) != 0) {
		free(s);
		return NULL;
	}
	bzrtp_setClientData(s->ctx, ssrc, s);
	return s;
}

void sotto_bzrtp_free(sotto_bzrtp_t *s) {
	if (s == NULL) return;
	bzrtp_destroyBzrtpContext(s->ctx, s->ssrc);
	close_cache(s->db);
	free(s);
}
