/* The greedy decode loop in C, called through ctypes (engine/native_loop.py).
 *
 * Why: between two llama_decode calls the Python loop spends 100-140 us (12 ms steps on a 2-vCPU VM) reading
 * the logits, taking their argmax and keeping its books, most of it cache misses on the interpreter's own
 * state after each decode has streamed the weights through the caches; llama-bench's tg spends none. This loop
 * does the same work (argmax, end-of-generation check, one timestamp per step) in a few microseconds and calls
 * back into Python only every `every_ns`, for progress and to let a stop in.
 *
 * It links against nothing: llama.cpp's functions come in as the addresses llama-cpp-python's ctypes bindings
 * hold, and the batch is the one the caller made with llama_batch_init (layout checked by the caller). It is a
 * Python extension module only so that the import system finds it (and anything that walks the package can
 * import it); its functions are called through ctypes, which lets go of the GIL around the loop. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

typedef struct {  /* llama.h's llama_batch */
    int32_t n_tokens;
    int32_t *token;
    float *embd;
    int32_t *pos;
    int32_t *n_seq_id;
    int32_t **seq_id;
    int8_t *logits;
} et_batch;

typedef int32_t (*et_decode_fn)(void *ctx, et_batch batch);
typedef float *(*et_logits_fn)(void *ctx, int32_t i);
typedef _Bool (*et_is_eog_fn)(const void *vocab, int32_t token);
typedef int32_t (*et_progress_fn)(int64_t generated, int64_t t_ns);  /* nonzero: stop */

/* *status besides llama_decode's own nonzero returns (1 no KV slot, 2 aborted, negative errors): out of their way */
#define ET_STOPPED INT32_MIN
#define ET_NO_LOGITS (INT32_MIN + 1)

/* The clock time.monotonic_ns() reads on Linux (the caller checks that they agree before using this loop). */
int64_t et_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

enum { CHUNK = 256 };  /* argmax: each chunk's maximum in vector lanes, then one scalar pass over the best chunk */

typedef float et_v4f __attribute__((vector_size(16)));  /* GCC's and Clang's vector extension: SSE, NEON */
typedef int32_t et_v4i __attribute__((vector_size(16)));

#if defined(__SSE__)
#include <xmmintrin.h>
static et_v4f lanes_max(et_v4f a, et_v4f b) {  /* b where b > a, else a: one maxps */
    return (et_v4f)_mm_max_ps((__m128)b, (__m128)a);
}
#else
static et_v4f lanes_max(et_v4f a, et_v4f b) {  /* b where b > a, else a (C has no vector ?:) */
    et_v4i take_b = b > a;
    return (et_v4f)(((et_v4i)b & take_b) | ((et_v4i)a & ~take_b));
}
#endif

static float chunk_max(const float *x) {  /* four independent lanes of 4: no chain of dependent maxima */
    et_v4f acc[4], next;
    memcpy(acc, x, sizeof acc);
    for (int i = 16; i < CHUNK; i += 16)
        for (int k = 0; k < 4; k++) {
            memcpy(&next, x + i + 4 * k, sizeof next);
            acc[k] = lanes_max(acc[k], next);
        }
    et_v4f a = lanes_max(lanes_max(acc[0], acc[1]), lanes_max(acc[2], acc[3]));
    float m = a[0];
    for (int k = 1; k < 4; k++) m = a[k] > m ? a[k] : m;
    return m;
}

/* The first index of the largest logit, as numpy's argmax (NaNs aside: a broken model's). */
int32_t et_argmax(const float *x, int32_t n) {
    float best = x[0];
    int32_t found = 0, best_start = 0, start = 0;
    for (; start + CHUNK <= n; start += CHUNK) {
        float m = chunk_max(x + start);
        if (m > best) {  /* strictly: an earlier chunk holding the same maximum keeps it */
            best = m;
            best_start = start;
        }
    }
    for (int32_t i = best_start; i < start; i++)
        if (x[i] == best) {
            found = i;
            break;
        }
    for (int32_t i = start; i < n; i++)  /* the ragged tail */
        if (x[i] > best) {
            best = x[i];
            found = i;
        }
    return found;
}

/* Decode the live sequences one step at a time, greedily, as engine/runner.py's Python loop does.
 *
 * last[seq]: each sequence's last token (in: the first generated; out: the last sampled).
 * live[0..n_live): the sequences still going, in batch order (out: those left).
 * Per step s: t_ns[s] the time after sampling, tokens[s * n_seq + seq] the token that sequence gave or -1
 * (it ended). Returns the steps taken; *status is llama_decode's nonzero return
 * (the step that failed is not counted), ET_NO_LOGITS when llama.cpp kept none, ET_STOPPED when `progress`
 * asked to stop, else 0. */
int32_t et_greedy_steps(et_decode_fn decode, et_logits_fn logits, et_is_eog_fn is_eog, void *ctx,
                        const void *vocab, et_batch *batch, int32_t n_vocab, int32_t ignore_eos, int32_t n_seq,
                        int32_t *last, int32_t *live, int32_t *n_live, int32_t pos, int32_t max_steps,
                        int32_t *tokens, int64_t *t_ns, int64_t generated,
                        et_progress_fn progress, int64_t every_ns, int32_t *status) {
    int64_t next_report = 0;
    int32_t step = 0;
    *status = 0;
    while (*n_live > 0 && step < max_steps) {
        for (int32_t i = 0; i < *n_live; i++) {
            batch->token[i] = last[live[i]];
            batch->pos[i] = pos;
            batch->n_seq_id[i] = 1;
            batch->seq_id[i][0] = live[i];
            batch->logits[i] = 1;
        }
        batch->n_tokens = *n_live;
        int32_t rc = decode(ctx, *batch);
        if (rc != 0) {
            *status = rc;
            return step;
        }
        for (int32_t i = 0; i < *n_live; i++) {
            const float *row = logits(ctx, i);
            if (!row) {
                *status = ET_NO_LOGITS;
                return step;
            }
            last[live[i]] = et_argmax(row, n_vocab);
        }
        int64_t now = et_now_ns();
        int32_t kept = 0;
        for (int32_t s = 0; s < n_seq; s++) tokens[(int64_t)step * n_seq + s] = -1;
        for (int32_t i = 0; i < *n_live; i++) {
            int32_t seq = live[i], token = last[seq];
            if (!ignore_eos && is_eog(vocab, token)) continue;
            tokens[(int64_t)step * n_seq + seq] = token;
            live[kept++] = seq;
        }
        *n_live = kept;
        t_ns[step] = now;
        generated += kept;
        pos++;
        step++;
        if (progress && now >= next_report) {
            next_report = now + every_ns;
            if (progress(generated, now)) {
                *status = ET_STOPPED;
                return step;
            }
        }
    }
    return step;
}

static struct PyModuleDef greedy_loop_module = {
    PyModuleDef_HEAD_INIT, "_greedy_loop",
    "The greedy decode loop in C; its functions are called through ctypes (engine/native_loop.py).",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__greedy_loop(void) { return PyModule_Create(&greedy_loop_module); }
