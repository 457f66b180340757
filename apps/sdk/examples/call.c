/*
 * call.c: Alice calls Bob in one process over loopback through the Sotto C
 * API. The program is the signalling: each call's signal callback hands
 * the message straight to the other call. Both reach Secure, print their
 * SAS, exchange a second of tones (Alice 440 Hz, Bob 660 Hz), and Alice
 * hangs up. Alice's audio runs at 48 kHz (SOTTO_FRAME_SAMPLES a frame);
 * Bob's at 16 kHz, as a Bluetooth headset's would: the SDK converts.
 * Exit status 0 on success.
 *
 * With arguments `TURN_IP:PORT USER PASSWORD` both calls are relay-only
 * through that TURN server.
 *
 * Build (from the repository root, after cargo build -p sotto-sdk):
 *   cc apps/sdk/examples/call.c -Iapps/sdk/include \
 *      target/debug/libsotto.a -lsqlite3 -lvpx -lpthread -ldl -lm -o call
 */
#include "sotto.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The largest 10 ms frame of either side (Alice's, at 48 kHz). */
#define FRAME SOTTO_FRAME_SAMPLES
#define BOB_RATE 16000

typedef struct Side {
    const char *name;
    SottoCall *peer;       /* where our signals go; set before placing */
    int ringing, secure, ended;
    char sas[64];
    char algorithms[64];
    SottoEndReason reason;
    unsigned long long packets_received;
} Side;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;

static void on_signal(void *user, const char *json, size_t len) {
    Side *s = user;
    /* Runs on an SDK thread; sotto_call_signal never blocks, so relaying
     * from inside the callback is allowed. */
    SottoStatus st = sotto_call_signal(s->peer, json, len);
    if (st != SOTTO_STATUS_OK && st != SOTTO_STATUS_ENDED)
        fprintf(stderr, "%s: relaying %.*s failed: %s\n", s->name, (int)len,
                json, sotto_last_error_message());
}

static void on_event(void *user, const SottoEvent *e) {
    Side *s = user;
    pthread_mutex_lock(&lock);
    switch (e->kind) {
    case SOTTO_EVENT_KIND_RINGING:
        s->ringing = 1;
        printf("%s: ringing (%s)\n", s->name, e->incoming ? "incoming" : "outgoing");
        break;
    case SOTTO_EVENT_KIND_CONNECTED:
        printf("%s: connected\n", s->name);
        break;
    case SOTTO_EVENT_KIND_PATH_CHANGED:
        printf("%s: path %s\n", s->name, e->path == SOTTO_PATH_RELAY ? "relay" : "direct");
        break;
    case SOTTO_EVENT_KIND_SECURE_UP:
        snprintf(s->sas, sizeof s->sas, "%s", e->sas);
        snprintf(s->algorithms, sizeof s->algorithms, "%s", e->algorithms);
        s->secure = 1;
        break;
    case SOTTO_EVENT_KIND_STATS:
        s->packets_received = e->stats.packets_received;
        break;
    case SOTTO_EVENT_KIND_ENDED:
        s->reason = e->end_reason;
        s->ended = 1;
        printf("%s: ended (%s)\n", s->name, e->detail);
        break;
    default:
        printf("%s: event %d\n", s->name, (int)e->kind);
    }
    fflush(stdout);
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Waits until *flag is set, at most `seconds`. */
static int wait_for(int *flag, int seconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&lock);
    while (!*flag)
        if (pthread_cond_timedwait(&changed, &lock, &deadline) != 0)
            break;
    int ok = *flag;
    pthread_mutex_unlock(&lock);
    return ok;
}

#define CHECK(expr)                                                            \
    do {                                                                       \
        SottoStatus st_ = (expr);                                              \
        if (st_ != SOTTO_STATUS_OK) {                                          \
            fprintf(stderr, "%s failed: %d %s\n", #expr, (int)st_,             \
                    sotto_last_error_message());                               \
            return 1;                                                          \
        }                                                                      \
    } while (0)

/* One 10 ms frame of `n` samples (the rate is 100 n) of a tone. */
static void tone(int16_t *frame, size_t n, double hz, long *phase) {
    for (size_t i = 0; i < n; i++, (*phase)++)
        frame[i] = (int16_t)(8000.0 * sin(2.0 * M_PI * hz * (double)*phase / (100.0 * n)));
}

/* Zero crossings per 10 ms frame estimate the dominant frequency. */
static int crossings(const int16_t *frame, size_t len) {
    int n = 0;
    for (size_t i = 1; i < len; i++)
        n += (frame[i - 1] < 0) != (frame[i] < 0);
    return n;
}

static int loud(const int16_t *frame, size_t n) {
    int peak = 0;
    for (size_t i = 0; i < n; i++)
        peak = abs(frame[i]) > peak ? abs(frame[i]) : peak;
    return peak > 2000;
}

int main(int argc, char **argv) {
    Side alice = {.name = "alice"}, bob = {.name = "bob"};
    /* Each party is a device of its own: one engine (and ZRTP identity)
     * each. Two calls on one engine would be the device calling itself. */
    SottoEngine *engine_a = NULL, *engine_b = NULL;
    SottoCall *a = NULL, *b = NULL;

    /* Invalid arguments are errors, not crashes. */
    if (sotto_call_place(NULL) != SOTTO_STATUS_NULL_ARGUMENT) return 1;
    printf("null call: %s\n", sotto_last_error_message());

    CHECK(sotto_engine_new(NULL, &engine_a));
    CHECK(sotto_engine_new(NULL, &engine_b));
    SottoCallConfig cfg;
    CHECK(sotto_call_config_default(&cfg));
    cfg.bind_address = "127.0.0.1:0";
    /* Tones are not speech: send them without DTX. After an outage of
     * seconds, drop the backlog and go back to live. */
    cfg.audio_dtx = false;
    cfg.jitter_outage_hold_ms = 1000;
    if (argc == 4) {
        cfg.relay_only = true;
        cfg.turn_server = argv[1];
        cfg.turn_username = argv[2];
        cfg.turn_password = argv[3];
    } else if (argc != 1) {
        fprintf(stderr, "usage: %s [TURN_IP:PORT USER PASSWORD]\n", argv[0]);
        return 2;
    }

    SottoCallbacks cb_a = {.user_data = &alice, .on_signal = on_signal, .on_event = on_event};
    SottoCallbacks cb_b = {.user_data = &bob, .on_signal = on_signal, .on_event = on_event};
    CHECK(sotto_call_new(engine_a, &cfg, true, cb_a, &a));
    /* Bob hands the SDK his device's own rate. */
    SottoCallConfig cfg_b = cfg;
    cfg_b.audio_sample_rate = BOB_RATE;
    CHECK(sotto_call_new(engine_b, &cfg_b, false, cb_b, &b));
    size_t na = sotto_call_frame_samples(a), nb = sotto_call_frame_samples(b);
    printf("frames: alice %zu, bob %zu samples\n", na, nb);
    alice.peer = b;
    bob.peer = a;
    if (sotto_call_answer(a) != SOTTO_STATUS_WRONG_STATE) return 1;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CHECK(sotto_call_place(a));
    if (!wait_for(&bob.ringing, 10)) { fprintf(stderr, "bob never rang\n"); return 1; }
    CHECK(sotto_call_answer(b));
    if (!wait_for(&alice.secure, 20) || !wait_for(&bob.secure, 20)) {
        fprintf(stderr, "not secure\n");
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    /* Includes the program's own answer right after ringing. */
    printf("setup (place to both secure): %.1f ms\n",
           (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
    printf("alice SAS: %s (%s)\n", alice.sas, alice.algorithms);
    printf("bob SAS: %s (%s)\n", bob.sas, bob.algorithms);
    if (strcmp(alice.sas, bob.sas) != 0) { fprintf(stderr, "SAS differ\n"); return 1; }
    CHECK(sotto_call_confirm_sas(a, true));
    CHECK(sotto_call_confirm_sas(b, true));

    /* One second of audio each way in 10 ms frames, then half a second
     * more of listening for what is still in flight. */
    int16_t frame[FRAME];
    long pa = 0, pb = 0;
    int heard_a = 0, heard_b = 0, cross_a = 0, cross_b = 0;
    struct timespec tick = {0, 10 * 1000 * 1000};
    for (int i = 0; i < 150; i++) {
        if (i < 100) {
            tone(frame, na, 440.0, &pa);
            CHECK(sotto_call_push_audio(a, frame, na));
            tone(frame, nb, 660.0, &pb);
            CHECK(sotto_call_push_audio(b, frame, nb));
        }
        bool got;
        CHECK(sotto_call_pull_audio(b, frame, nb, &got));
        if (got && loud(frame, nb)) { heard_b++; cross_b += crossings(frame, nb); }
        CHECK(sotto_call_pull_audio(a, frame, na, &got));
        if (got && loud(frame, na)) { heard_a++; cross_a += crossings(frame, na); }
        nanosleep(&tick, NULL);
    }
    /* A tone of f Hz crosses zero about 2 f / 100 times per 10 ms frame. */
    printf("bob heard %d loud frames at %.0f Hz\n", heard_b,
           heard_b ? cross_b * 50.0 / heard_b : 0.0);
    printf("alice heard %d loud frames at %.0f Hz\n", heard_a,
           heard_a ? cross_a * 50.0 / heard_a : 0.0);

    CHECK(sotto_call_hang_up(a));
    if (!wait_for(&alice.ended, 10) || !wait_for(&bob.ended, 10)) {
        fprintf(stderr, "not ended\n");
        return 1;
    }
    if (alice.reason != SOTTO_END_REASON_LOCAL_HANGUP ||
        bob.reason != SOTTO_END_REASON_REMOTE_HANGUP)
        return 1;
    /* An ended call says so to its controls. */
    if (sotto_call_hang_up(a) != SOTTO_STATUS_ENDED)
        return 1;
    CHECK(sotto_call_destroy(a));
    CHECK(sotto_call_destroy(b));
    CHECK(sotto_engine_destroy(engine_a));
    CHECK(sotto_engine_destroy(engine_b));
    printf("done\n");
    return 0;
}
