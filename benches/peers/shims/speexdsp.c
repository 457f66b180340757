/* Thin shim over the Speex jitter buffer (Debian libspeexdsp-dev,
 * speex/speex_jitter.h) so that Rust never needs the struct layouts. */
#include <speex/speex_jitter.h>
#include <stdint.h>
#include <stddef.h>

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
