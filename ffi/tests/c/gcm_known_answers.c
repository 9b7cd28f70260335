/*
 * Known answers through the C ABI: every case of a vector file (written by
 * tests/c_programs.rs from the GCM specification's 18 test cases and the six
 * NIST CAVP GCM response files) on every backend this CPU supports, plus two
 * of the specification's cases written out here, so that this program checks
 * something even without its input.
 *
 * Vector file: one case per line, six space-separated hex fields (`-` for
 * empty): key iv aad pt ct tag, where pt is `FAIL` for a tag that must be
 * rejected.
 */
#define _POSIX_C_SOURCE 200809L
#include "check.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap) {
    if (strcmp(s, "-") == 0) {
        return 0;
    }
    size_t n = strlen(s) / 2;
    if (n > cap) {
        fprintf(stderr, "field too long: %s\n", s);
        exit(2);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned int b;
        if (sscanf(s + 2 * i, "%2x", &b) != 1) {
            fprintf(stderr, "bad hex: %s\n", s);
            exit(2);
        }
        out[i] = (uint8_t)b;
    }
    return n;
}

struct kat {
    uint8_t key[32], iv[256], aad[256], pt[256], ct[256], tag[16];
    size_t key_len, iv_len, aad_len, pt_len, ct_len, tag_len;
    int fail; /* the tag must be rejected */
};

/* Run one case on one key: encrypt (if it has a plaintext) and decrypt. */
static void run_case(const espgcm_gcm *g, const struct kat *k) {
    uint8_t buf[256];
    if (!k->fail) {
        uint8_t tag[16];
        memcpy(buf, k->pt, k->pt_len);
        CHECK_RC(espgcm_gcm_encrypt(g, k->iv, k->iv_len, k->aad_len ? k->aad : NULL, k->aad_len,
                                    k->pt_len ? buf : NULL, k->pt_len, tag),
                 ESPGCM_OK);
        CHECK(memcmp(buf, k->ct, k->ct_len) == 0);
        CHECK(memcmp(tag, k->tag, k->tag_len) == 0);
    }
    memcpy(buf, k->ct, k->ct_len);
    int rc = espgcm_gcm_decrypt(g, k->iv, k->iv_len, k->aad, k->aad_len, buf, k->ct_len, k->tag,
                                k->tag_len);
    if (k->fail) {
        CHECK_RC(rc, ESPGCM_ERR_AUTH);
        /* Unverified plaintext is never released. */
        CHECK(all_zero(buf, k->ct_len));
    } else {
        CHECK_RC(rc, ESPGCM_OK);
        CHECK(memcmp(buf, k->pt, k->pt_len) == 0);
    }
}

/* The supported backends: all of them, not just the available ones. */
static size_t supported(espgcm_backend *out) {
    size_t n = 0;
    for (espgcm_backend b = ESPGCM_BACKEND_SCALAR; b <= ESPGCM_BACKEND_ARMV8; b++) {
        if (espgcm_backend_is_supported(b)) {
            out[n++] = b;
        }
    }
    return n;
}

/* GCM specification test case 2 (AES-128, one zero block) and 16 (AES-256, 60 bytes, 20 bytes
 * of AAD), written out. */
static void spec_cases(espgcm_backend backend) {
    static const uint8_t zero[16] = {0};
    static const uint8_t ct2[16] = {0x03, 0x88, 0xda, 0xce, 0x60, 0xb6, 0xa3, 0x92,
                                    0xf3, 0x28, 0xc2, 0xb9, 0x71, 0xb2, 0xfe, 0x78};
    static const uint8_t tag2[16] = {0xab, 0x6e, 0x47, 0xd4, 0x2c, 0xec, 0x13, 0xbd,
                                     0xf5, 0x3a, 0x67, 0xb2, 0x12, 0x57, 0xbd, 0xdf};
    struct kat k2 = {0};
    k2.key_len = 16;
    k2.iv_len = 12;
    memcpy(k2.pt, zero, 16);
    k2.pt_len = 16;
    memcpy(k2.ct, ct2, 16);
    k2.ct_len = 16;
    memcpy(k2.tag, tag2, 16);
    k2.tag_len = 16;

    struct kat k16 = {0};
    k16.key_len = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", k16.key, 32);
    k16.iv_len = unhex("cafebabefacedbaddecaf888", k16.iv, sizeof k16.iv);
    k16.aad_len = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", k16.aad, sizeof k16.aad);
    k16.pt_len = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                       "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
                       k16.pt, sizeof k16.pt);
    k16.ct_len = unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
                       "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
                       k16.ct, sizeof k16.ct);
    k16.tag_len = unhex("76fc6ece0f4e1768cddf8853bb2d551b", k16.tag, 16);

    const struct kat *cases[] = {&k2, &k16};
    for (size_t i = 0; i < 2; i++) {
        espgcm_gcm *g = NULL;
        CHECK_RC(espgcm_gcm_new_with_backend(cases[i]->key, cases[i]->key_len, backend, &g), ESPGCM_OK);
        CHECK(g != NULL);
        if (g != NULL) {
            run_case(g, cases[i]);
        }
        espgcm_gcm_free(g);
    }
}

int main(int argc, char **argv) {
    espgcm_backend backends[5];
    size_t n_backends = supported(backends);
    CHECK(n_backends >= 1 && backends[0] == ESPGCM_BACKEND_SCALAR);
    for (size_t b = 0; b < n_backends; b++) {
        spec_cases(backends[b]);
    }

    unsigned long cases = 0, forged = 0;
    if (argc > 1) {
        FILE *f = fopen(argv[1], "r");
        if (f == NULL) {
            perror(argv[1]);
            return 2;
        }
        char *line = NULL;
        size_t cap = 0;
        while (getline(&line, &cap, f) > 0) {
            char key[80], iv[520], aad[520], pt[520], ct[520], tag[40];
            if (sscanf(line, "%79s %519s %519s %519s %519s %39s", key, iv, aad, pt, ct, tag) != 6) {
                fprintf(stderr, "bad vector line: %s", line);
                return 2;
            }
            struct kat k = {0};
            k.key_len = unhex(key, k.key, sizeof k.key);
            k.iv_len = unhex(iv, k.iv, sizeof k.iv);
            k.aad_len = unhex(aad, k.aad, sizeof k.aad);
            k.fail = strcmp(pt, "FAIL") == 0;
            k.pt_len = k.fail ? 0 : unhex(pt, k.pt, sizeof k.pt);
            k.ct_len = unhex(ct, k.ct, sizeof k.ct);
            k.tag_len = unhex(tag, k.tag, sizeof k.tag);
            for (size_t b = 0; b < n_backends; b++) {
                espgcm_gcm *g = NULL;
                CHECK_RC(espgcm_gcm_new_with_backend(k.key, k.key_len, backends[b], &g), ESPGCM_OK);
                if (g != NULL) {
                    run_case(g, &k);
                }
                espgcm_gcm_free(g);
            }
            cases++;
            forged += (unsigned long)k.fail;
        }
        free(line);
        fclose(f);
    }
    printf("gcm_known_answers: %lu vector cases (%lu forged) on %zu backends\n", cases, forged, n_backends);
    /* The harness passes the file; without it, only the written-out cases ran. */
    CHECK(argc < 2 || cases > 0);
    return finish("gcm_known_answers");
}
