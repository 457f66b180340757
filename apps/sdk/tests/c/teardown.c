/* SDK calls while the C runtime tears a thread or the process down: from
 * a pthread key destructor on a thread that used the SDK before, and from
 * an atexit handler on the main thread. Both run after the thread's Rust
 * thread-locals may be gone; the SDK must still return statuses, not
 * abort. Run by `cargo test -p sotto-sdk --test c_example`. */
#include "sotto.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static pthread_key_t key;
static SottoEngine *engine;

static void on_thread_exit(void *p) {
    (void)p;
    printf("thread exit: hang_up(NULL) = %d\n", (int)sotto_call_hang_up(NULL));
    fflush(stdout);
}

static void *worker(void *arg) {
    (void)arg;
    sotto_call_place(NULL);              /* any SDK call on this thread */
    pthread_setspecific(key, (void *)1); /* the app's per-thread state */
    return NULL;
}

static void at_exit(void) {
    printf("at exit: engine_destroy = %d\n", (int)sotto_engine_destroy(engine));
    fflush(stdout);
}

int main(void) {
    if (sotto_abi_version() != SOTTO_ABI_VERSION) {
        fprintf(stderr, "ABI %u, header %u\n", sotto_abi_version(), SOTTO_ABI_VERSION);
        return 1;
    }
    pthread_key_create(&key, on_thread_exit);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    if (sotto_engine_new(NULL, &engine) != SOTTO_STATUS_OK) {
        fprintf(stderr, "engine: %s\n", sotto_last_error_message());
        return 1;
    }
    atexit(at_exit);
    return 0;
}
