/*
 * The MIH probe-and-verify loops in C, for safeguard.index.mih (loaded with ctypes): one for each of
 * MIHIndex's layouts (dense: offsets and rows; sparse: bitmap, ranks and inline hashes).
 *
 * numpy answers a query in a few dozen vectorised passes over temporaries (probe positions, the
 * occupancy test, bucket ranges, candidate rows, their hashes, distances). Here a few tight passes per
 * query go from probe to verified match, touching each candidate's hash once. Same arrays, same
 * answers: the numpy path stays as the fallback and as the reference the tests compare these with
 * (tests/index/test_mih_kernel.py).
 *
 * It is a CPython extension module only so that setuptools builds and installs it; Python calls
 * its plain C functions through ctypes (no Python objects cross).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* above this many candidates for one query, duplicates (one entry reached from several tables) are
 * dropped before verification */
#define SG_DEDUPE_ABOVE 1024

/* the most tables a search takes (the caller checks; MIHIndex uses at most 16) */
#define SG_MAX_TABLES 64

#if defined(__GNUC__) && defined(__x86_64__)
#define SG_CLONES __attribute__((target_clones("popcnt", "default")))
#else
#define SG_CLONES
#endif

/* make *buf (of *size entries) hold at least need entries; 0 if memory ran out (*buf is kept) */
static int sg_reserve(int64_t **buf, int64_t *size, int64_t need) {
    if (need <= *size)
        return 1;
    int64_t *grown = realloc(*buf, sizeof(int64_t) * (size_t)need);
    if (grown == NULL)
        return 0;
    *buf = grown;
    *size = need;
    return 1;
}

static inline int64_t sg_load(const void *base, int is64, int64_t i) {
    return is64 ? ((const int64_t *)base)[i] : (int64_t)((const int32_t *)base)[i];
}

/* Hamming distance of a 4-word hash to the query's words (inlined into each target clone) */
static inline __attribute__((always_inline)) int64_t sg_dist(const uint64_t *h, uint64_t q0, uint64_t q1, uint64_t q2,
                                                             uint64_t q3) {
    return __builtin_popcountll(h[0] ^ q0) + __builtin_popcountll(h[1] ^ q1) + __builtin_popcountll(h[2] ^ q2) +
           __builtin_popcountll(h[3] ^ q3);
}

/* one match: written while there is room, counted either way (the caller retries with room for all) */
typedef struct {
    int64_t *q, *row, *dist;
    int64_t cap, found;
} sg_out;

static inline void sg_emit(sg_out *out, int64_t k, int64_t row, int64_t d) {
    if (out->found < out->cap) {
        out->q[out->found] = k;
        out->row[out->found] = row;
        out->dist[out->found] = d;
    }
    out->found++;
}

/* bits [start, start + width) of a 4-word hash (bit 0 = the most significant of word 0), as in
 * mih._extract; width <= 32 */
static inline int64_t sg_key(const uint64_t *h, int64_t start, int64_t width) {
    const int64_t wi = start >> 6, off = start & 63;
    const uint64_t mask = (1ull << width) - 1;
    if (off + width <= 64)
        return (int64_t)((h[wi] >> (64 - off - width)) & mask);
    const int64_t lo = off + width - 64;
    return (int64_t)(((h[wi] << lo) | (h[wi + 1] >> (64 - lo))) & mask);
}

/*
 * The dense layout (MIHIndex, most buckets full): for each query k (4 words at q[4k..4k+3]; its key in
 * table t is bits starts[t] .. starts[t] + widths[t]), probe every (table, mask) pair of the probe set
 * and report each main-part row within max_distance that is live. A row reached from several tables
 * may be reported more than once (the caller dedupes the matches); past SG_DEDUPE_ABOVE candidates they
 * are deduped before verification. Writes up to cap (query, row, distance) triples and returns how
 * many matches there were in all: if that is more than cap, call again with a larger buffer. Returns
 * -1 if scratch memory could not be had.
 *
 * Each query runs in branch-free passes, as the numpy path does, so that the random reads of a pass
 * are independent of each other and the CPU overlaps them: (1) probe positions; (2) their buckets'
 * ranges, keeping the non-empty ones; (3) the candidates' row numbers; (4) each candidate verified
 * with XOR and popcount. A plain nested loop (probe, then bucket, then row) was slower than numpy:
 * every bucket test was a mispredicted branch with a cache miss behind it.
 */
SG_CLONES
int64_t sg_mih_search(const uint64_t *q, int64_t nq, int64_t tables, const int64_t *starts, const int64_t *widths,
                      const int64_t *ptab, const int64_t *pmask, const int64_t *pbase, int64_t nprobes,
                      const void *offsets, int off64, const void *rows, int rows64,
                      const uint64_t *hashes, const uint8_t *live, int64_t max_distance,
                      int64_t *out_q, int64_t *out_row, int64_t *out_dist, int64_t cap) {
    sg_out out = {out_q, out_row, out_dist, cap, 0};
    int failed = 0;
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(nprobes > 0 ? nprobes : 1));
    int64_t *lo = malloc(sizeof(int64_t) * (size_t)(nprobes > 0 ? nprobes : 1));
    int64_t *hi = malloc(sizeof(int64_t) * (size_t)(nprobes > 0 ? nprobes : 1));
    int64_t *cand = NULL, ncand = 0, *set = NULL, nset = 0;
    if (pos == NULL || lo == NULL || hi == NULL) {
        free(pos);
        free(lo);
        free(hi);
        return -1;
    }
    for (int64_t k = 0; k < nq; k++) {
        const uint64_t q0 = q[4 * k], q1 = q[4 * k + 1], q2 = q[4 * k + 2], q3 = q[4 * k + 3];
        int64_t kk[SG_MAX_TABLES];
        for (int64_t t = 0; t < tables; t++)
            kk[t] = sg_key(q + 4 * k, starts[t], widths[t]);
        const int64_t m = nprobes;
        for (int64_t p = 0; p < nprobes; p++)
            pos[p] = pbase[p] + (kk[ptab[p]] ^ pmask[p]);
        int64_t b = 0, total = 0;
        for (int64_t i = 0; i < m; i++) {
            const int64_t s = sg_load(offsets, off64, pos[i]);
            const int64_t e = sg_load(offsets, off64, pos[i] + 1);
            lo[b] = s;
            hi[b] = e;
            b += e > s;
            total += e - s;
        }
        if (!sg_reserve(&cand, &ncand, total)) {
            failed = 1;
            break;
        }
        int64_t c = 0;
        for (int64_t i = 0; i < b; i++)
            for (int64_t j = lo[i]; j < hi[i]; j++)
                cand[c++] = sg_load(rows, rows64, j);
        if (c > SG_DEDUPE_ABOVE) {
            /* near a dense cluster an entry is a candidate in most tables: keep each row once, so that
             * its hash is read from memory once (an open-addressing set that fits in L2) */
            int64_t slots = 1;
            while (slots < 2 * c)
                slots <<= 1;
            if (!sg_reserve(&set, &nset, slots)) {
                failed = 1;
                break;
            }
            memset(set, 0xff, sizeof(int64_t) * (size_t)slots);
            const uint64_t mask = (uint64_t)slots - 1;
            int64_t w = 0;
            for (int64_t i = 0; i < c; i++) {
                const int64_t r = cand[i];
                uint64_t h = ((uint64_t)r * 0x9E3779B97F4A7C15ull) >> 20;
                for (;; h++) {
                    int64_t *slot = set + (h & mask);
                    if (*slot == r)
                        break;
                    if (*slot < 0) {
                        *slot = r;
                        cand[w++] = r;
                        break;
                    }
                }
            }
            c = w;
        }
        for (int64_t i = 0; i < c; i++) {
            const int64_t r = cand[i];
            const int64_t d = sg_dist(hashes + 4 * r, q0, q1, q2, q3);
            if (d <= max_distance && live[r])
                sg_emit(&out, k, r, d);
        }
    }
    free(cand);
    free(set);
    free(pos);
    free(lo);
    free(hi);
    return failed ? -1 : out.found;
}

/*
 * sg_mih_search for the sparse layout (MIHIndex._build_sparse): most buckets empty, a bitmap of the
 * non-empty ones read as 64-bit words (occ), the set bits before each word (rank), and per non-empty
 * bucket r either its one row (ent_rows[r] >= 0) with a copy of that row's hash (ent_hash[4r..]), or
 * -(k + 1) for a bucket of several rows, listed at ovf_rows[ovf_off[k] .. ovf_off[k + 1]] and verified
 * against hashes. Same contract as sg_mih_search otherwise.
 *
 * Passes per query: (1) probe positions, keeping the occupied ones; (2) their bucket numbers (one
 * read of rank and a popcount); (3) each bucket's row and inline hash, read side by side, verified
 * at once; buckets of several rows are set aside; (4) those, row by row. A single-row bucket costs
 * one random read of 36 bytes instead of the dense layout's three dependent reads.
 */
SG_CLONES
int64_t sg_mih_search_sparse(const uint64_t *q, int64_t nq, int64_t tables, const int64_t *starts,
                             const int64_t *widths, const int64_t *ptab, const int64_t *pmask, const int64_t *pbase,
                             int64_t nprobes, const uint64_t *occ, const uint32_t *rank, const void *ent_rows,
                             const uint64_t *ent_hash, const int64_t *ovf_off, const void *ovf_rows, int rows64,
                             const uint64_t *hashes, const uint8_t *live, int64_t max_distance, int64_t *out_q,
                             int64_t *out_row, int64_t *out_dist, int64_t cap) {
    sg_out out = {out_q, out_row, out_dist, cap, 0};
    const size_t room = (size_t)(nprobes > 0 ? nprobes : 1);
    int64_t *pos = malloc(sizeof(int64_t) * room);
    int64_t *rk = malloc(sizeof(int64_t) * room);
    int64_t *multi = malloc(sizeof(int64_t) * room);
    if (pos == NULL || rk == NULL || multi == NULL) {
        free(pos);
        free(rk);
        free(multi);
        return -1;
    }
    for (int64_t k = 0; k < nq; k++) {
        const uint64_t *qk = q + 4 * k;
        const uint64_t q0 = qk[0], q1 = qk[1], q2 = qk[2], q3 = qk[3];
        int64_t kk[SG_MAX_TABLES];
        for (int64_t t = 0; t < tables; t++)
            kk[t] = sg_key(qk, starts[t], widths[t]);
        int64_t m = 0;
        for (int64_t p = 0; p < nprobes; p++) {
            const int64_t x = pbase[p] + (kk[ptab[p]] ^ pmask[p]);
            pos[m] = x;
            m += (int64_t)((occ[x >> 6] >> (x & 63)) & 1);
        }
        for (int64_t i = 0; i < m; i++) {
            const int64_t x = pos[i];
            const uint64_t below = occ[x >> 6] & ((1ull << (x & 63)) - 1);
            rk[i] = (int64_t)rank[x >> 6] + __builtin_popcountll(below);
        }
        int64_t nm = 0;
        for (int64_t i = 0; i < m; i++) {
            const int64_t r = rk[i];
            const int64_t row = sg_load(ent_rows, rows64, r);
            const int64_t d = sg_dist(ent_hash + 4 * r, q0, q1, q2, q3);
            if (row < 0)
                multi[nm++] = -row - 1;
            else if (d <= max_distance && live[row])
                sg_emit(&out, k, row, d);
        }
        for (int64_t i = 0; i < nm; i++) {
            for (int64_t j = ovf_off[multi[i]]; j < ovf_off[multi[i] + 1]; j++) {
                const int64_t row = sg_load(ovf_rows, rows64, j);
                const int64_t d = sg_dist(hashes + 4 * row, q0, q1, q2, q3);
                if (d <= max_distance && live[row])
                    sg_emit(&out, k, row, d);
            }
        }
    }
    free(pos);
    free(rk);
    free(multi);
    return out.found;
}

static struct PyModuleDef sg_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_mihkernel",
    .m_doc = "MIH search loop; called through ctypes (see safeguard.index.mih).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__mihkernel(void) { return PyModule_Create(&sg_module); }
