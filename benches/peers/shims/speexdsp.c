/* Thin shim over the Speex jitter buffer (Debian libspeexdsp-dev,
 * speex/speex_jitter.h) so that Rust never needs the struct layouts. */
#include <speex/speex_jitter.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>

void *sotto_speex_jb_new(int32_t step_size) {
    return jitter_buffer_init(step_size);
}

void sotto_speex_jb_free(void *jb) {
    if (jb) jitter_buffer_destroy((JitterBuffer *)jb);
}

void sotto_speex_jb_reset(void *jb) {
    jitter_buffer_reset((JitterBuffer *)jb);
}

/* Copies `data` into the buffer (no destroy callback is set). */
void sotto_speex_jb_put(void *jb, const uint8_t *data, uint32_t len,
                        uint32_t timestamp, uint32_t span, uint16_t sequence) {
    JitterBufferPacket p;
    p.data = (char *)data;
    p.len = len;
    p.timestamp = timestamp;
    p.span = span;
    p.sequence = sequence;
    p.user_data = 0;
    jitter_buffer_put((JitterBuffer *)jb, &p);
}

/* Returns the Speex status code; on JITTER_BUFFER_OK the payload is in
 * `out` (at most `cap` bytes), its length in *len, its timestamp in *ts and
 * its span in *span. */
int32_t sotto_speex_jb_get(void *jb, uint8_t *out, uint32_t cap,
                           int32_t desired_span, uint32_t *len, uint32_t *ts,
                           uint32_t *span, int32_t *start_offset) {
    JitterBufferPacket p;
    p.data = (char *)out;
    p.len = cap;
    p.timestamp = 0;
    p.span = 0;
    p.sequence = 0;
    p.user_data = 0;
    int32_t ret = jitter_buffer_get((JitterBuffer *)jb, &p, desired_span, start_offset);
    *len = p.len;
    *ts = p.timestamp;
    *span = p.span;
    return ret;
}

void sotto_speex_jb_tick(void *jb) {
    jitter_buffer_tick((JitterBuffer *)jb);
}

int32_t sotto_speex_jb_pointer_timestamp(void *jb) {
    return jitter_buffer_get_pointer_timestamp((JitterBuffer *)jb);
}

/* Integer-valued jitter_buffer_ctl requests (margin, delay step, max late
 * rate, late cost, available count). */
int32_t sotto_speex_jb_ctl(void *jb, int32_t request, int32_t *value) {
    spx_int32_t v = *value;
    int32_t ret = jitter_buffer_ctl((JitterBuffer *)jb, request, &v);
    *value = v;
    return ret;
}

/* The Speex echo canceller (speex/speex_echo.h: MDF) with the
 * preprocessor's residual echo suppression, as Speex's own echo example
 * sets them up; noise suppression off, as in Sotto's. */
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>

typedef struct {
    SpeexEchoState *echo;
    SpeexPreprocessState *pre;
} SottoSpeexEcho;

void *sotto_speex_echo_new(int32_t frame, int32_t filter_length, int32_t rate) {
    SottoSpeexEcho *s = (SottoSpeexEcho *)calloc(1, sizeof *s);
    if (!s) return NULL;
    s->echo = speex_echo_state_init(frame, filter_length);
    s->pre = speex_preprocess_state_init(frame, rate);
    if (!s->echo || !s->pre) {
        if (s->echo) speex_echo_state_destroy(s->echo);
        if (s->pre) speex_preprocess_state_destroy(s->pre);
        free(s);
        return NULL;
    }
    spx_int32_t r = rate, off = 0;
    speex_echo_ctl(s->echo, SPEEX_ECHO_SET_SAMPLING_RATE, &r);
    speex_preprocess_ctl(s->pre, SPEEX_PREPROCESS_SET_ECHO_STATE, s->echo);
    speex_preprocess_ctl(s->pre, SPEEX_PREPROCESS_SET_DENOISE, &off);
    return s;
}

/* `captured` and `played` are one frame each, `played` the far end that
 * was played as `captured` was recorded; the result goes to `out`. */
void sotto_speex_echo_run(void *st, const int16_t *captured, const int16_t *played, int16_t *out) {
    SottoSpeexEcho *s = (SottoSpeexEcho *)st;
    speex_echo_cancellation(s->echo, captured, played, out);
    speex_preprocess_run(s->pre, out);
}

void sotto_speex_echo_free(void *st) {
    SottoSpeexEcho *s = (SottoSpeexEcho *)st;
    if (!s) return;
    speex_echo_state_destroy(s->echo);
    speex_preprocess_state_destroy(s->pre);
    free(s);
}
