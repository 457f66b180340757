/*
 * Thin C shim over libsrtp2 (Debian libsrtp2-dev 2.5) for Sotto's interop
 * tests and benchmarks: one session per (profile, direction, key), and
 * in-place protect/unprotect of RTP and RTCP. The Rust side (src/libsrtp2.rs)
 * is the only caller; it calls sotto_srtp2_init once before anything else.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <srtp2/srtp.h>

/* Profile numbers shared with src/libsrtp2.rs. */
enum {
    SOTTO_AES_CM_128_HMAC_SHA1_80 = 0,
    SOTTO_AES_CM_128_HMAC_SHA1_32 = 1,
    SOTTO_AES_256_CM_HMAC_SHA1_80 = 2,
    SOTTO_AEAD_AES_128_GCM = 3,
    SOTTO_AEAD_AES_256_GCM = 4,
    SOTTO_AES_256_CM_HMAC_SHA1_32 = 5,
};

int sotto_srtp2_init(void) { return (int)srtp_init(); }

/*
 * Creates a session for every inbound (outbound = 0) or every outbound
 * (outbound = 1) SSRC. `key` is the master key followed by the master salt.
 * Returns a libsrtp2 status (0 = ok) and stores the session in *out.
 */
int sotto_srtp2_create(void **out, int profile, int outbound, const uint8_t *key,
                       size_t key_len, unsigned long window_size)
{
    srtp_policy_t policy;
    unsigned char master[SRTP_MAX_KEY_LEN];
    srtp_t session = NULL;
    int status;

    memset(&policy, 0, sizeof policy);
    if (key_len > sizeof master)
        return (int)srtp_err_status_bad_param;
    memset(master, 0, sizeof master);
    memcpy(master, key, key_len);

    switch (profile) {
    case SOTTO_AES_CM_128_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
        break;
    case SOTTO_AES_CM_128_HMAC_SHA1_32:
        /* SRTCP keeps the 80-bit tag (RFC 5764 section 4.1.2). */
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&policy.rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&policy.rtcp);
        break;
    case SOTTO_AES_256_CM_HMAC_SHA1_80:
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtp);
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp);
        break;
    case SOTTO_AES_256_CM_HMAC_SHA1_32:
        /* Likewise 80 bits for SRTCP (RFC 6188; libsrtp2's srtp.h). */
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_32(&policy.rtp);
        srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&policy.rtcp);
        break;
    case SOTTO_AEAD_AES_128_GCM:
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&policy.rtcp);
        break;
    case SOTTO_AEAD_AES_256_GCM:
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&policy.rtcp);
        break;
    default:
        return (int)srtp_err_status_bad_param;
    }
    policy.ssrc.type = outbound ? ssrc_any_outbound : ssrc_any_inbound;
    policy.key = master;
    policy.window_size = window_size;
    policy.allow_repeat_tx = 0;
    policy.next = NULL;

    status = (int)srtp_create(&session, &policy);
    /* libsrtp2 has copied the key into its own key schedule. */
    memset(master, 0, sizeof master);
    *out = status == 0 ? (void *)session : NULL;
    return status;
}

void sotto_srtp2_destroy(void *session)
{
    if (session != NULL)
        srtp_dealloc((srtp_t)session);
}

/* In place: buf holds *len bytes and has room for SRTP_MAX_TRAILER_LEN more. */
int sotto_srtp2_protect(void *session, uint8_t *buf, int *len)
{
    return (int)srtp_protect((srtp_t)session, buf, len);
}

int sotto_srtp2_unprotect(void *session, uint8_t *buf, int *len)
{
    return (int)srtp_unprotect((srtp_t)session, buf, len);
}

int sotto_srtp2_protect_rtcp(void *session, uint8_t *buf, int *len)
{
    return (int)srtp_protect_rtcp((srtp_t)session, buf, len);
}

int sotto_srtp2_unprotect_rtcp(void *session, uint8_t *buf, int *len)
{
    return (int)srtp_unprotect_rtcp((srtp_t)session, buf, len);
}

/* The most a protect call appends (SRTP_MAX_TRAILER_LEN). */
int sotto_srtp2_max_trailer(void) { return SRTP_MAX_TRAILER_LEN; }
