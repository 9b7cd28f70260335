/*
 * The AES-GCM part of the C ABI beyond known answers: NULL pointers and bad
 * lengths give error codes (never a crash, never a change to the buffer),
 * forged tags zero the buffer, overlapping buffers are refused, backends can
 * be listed, named and chosen, verify mode counts in the health snapshot,
 * and batches give the results of single calls job by job.
 */
#include "check.h"

static const uint8_t key16[16] = {0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42,
                                  0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42};
static const uint8_t iv12[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};

static void fill(uint8_t *p, size_t n, uint8_t seed) {
    for (size_t i = 0; i < n; i++) {
        p[i] = (uint8_t)(seed + 31 * i);
    }
}

static void test_new_and_free(void) {
    espgcm_gcm *g = (espgcm_gcm *)(uintptr_t)0x1; /* must be overwritten with NULL on error */
    CHECK_RC(espgcm_gcm_new(key16, 15, &g), ESPGCM_ERR_KEY_LENGTH);
    CHECK(g == NULL);
    CHECK_RC(espgcm_gcm_new(key16, 0, &g), ESPGCM_ERR_KEY_LENGTH);
    CHECK_RC(espgcm_gcm_new(NULL, 16, &g), ESPGCM_ERR_NULL_PARAMETER);
    CHECK(g == NULL);
    CHECK_RC(espgcm_gcm_new(key16, 16, NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_new_with_backend(key16, 16, 77, &g), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK(g == NULL);
    uint8_t key32[32], key24[24];
    fill(key32, 32, 9);
    fill(key24, 24, 9);
    CHECK_RC(espgcm_gcm_new(key24, 24, &g), ESPGCM_OK);
    espgcm_gcm_free(g);
    CHECK_RC(espgcm_gcm_new(key32, 32, &g), ESPGCM_OK);
    CHECK(g != NULL);
    espgcm_gcm_free(g);
    espgcm_gcm_free(NULL); /* fine */
}

static void test_encrypt_decrypt_errors(const espgcm_gcm *g) {
    uint8_t buf[64], orig[64], tag[16], aad[8] = {0};
    fill(buf, sizeof buf, 1);
    memcpy(orig, buf, sizeof buf);

    /* NULLs: nothing changes. */
    CHECK_RC(espgcm_gcm_encrypt(NULL, iv12, 12, aad, 8, buf, 64, tag), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_encrypt(g, NULL, 12, aad, 8, buf, 64, tag), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, NULL, 8, buf, 64, tag), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, NULL, 64, tag), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, buf, 64, NULL), ESPGCM_ERR_NULL_PARAMETER);
    /* Bad lengths. */
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 0, aad, 8, buf, 64, tag), ESPGCM_ERR_IV_LENGTH);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, buf, (size_t)1 << 40, tag), ESPGCM_ERR_TOO_LONG);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, buf, SIZE_MAX, tag), ESPGCM_ERR_TOO_LONG);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, SIZE_MAX, buf, 64, tag), ESPGCM_ERR_TOO_LONG);
    /* Overlap: the tag written over the data, the AAD inside the data. */
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, buf, 64, buf + 48), ESPGCM_ERR_OVERLAP);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, buf + 8, 8, buf, 64, tag), ESPGCM_ERR_OVERLAP);
    CHECK(memcmp(buf, orig, sizeof buf) == 0);
    /* Adjacent is not overlapping: AAD then data then tag, in one packet. */
    uint8_t packet[8 + 32 + 16];
    fill(packet, sizeof packet, 3);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, packet, 8, packet + 8, 32, packet + 40), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, packet, 8, packet + 8, 32, packet + 40, 16), ESPGCM_OK);

    /* Empty message and AAD as NULL with length 0. */
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, NULL, 0, NULL, 0, tag), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, NULL, 0, NULL, 0, tag, 16), ESPGCM_OK);

    /* A round trip, then tag lengths and forged tags. */
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, aad, 8, buf, 64, tag), ESPGCM_OK);
    CHECK(memcmp(buf, orig, sizeof buf) != 0);
    uint8_t ct[64];
    memcpy(ct, buf, sizeof ct);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, tag, 3), ESPGCM_ERR_TAG_LENGTH);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, tag, 17), ESPGCM_ERR_TAG_LENGTH);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, NULL, 16), ESPGCM_ERR_NULL_PARAMETER);
    CHECK(memcmp(buf, ct, sizeof ct) == 0); /* refused arguments leave the buffer */
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, tag, 4), ESPGCM_OK); /* truncated tag */
    CHECK(memcmp(buf, orig, sizeof buf) == 0);

    for (size_t bit = 0; bit < 128; bit += 37) {
        uint8_t forged[16];
        memcpy(forged, tag, 16);
        forged[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        memcpy(buf, ct, sizeof ct);
        CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, forged, 16), ESPGCM_ERR_AUTH);
        CHECK(all_zero(buf, sizeof buf));
    }
    /* A damaged ciphertext, a wrong AAD, a wrong IV: refused and zeroed. */
    memcpy(buf, ct, sizeof ct);
    buf[63] ^= 0x80;
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, aad, 8, buf, 64, tag, 16), ESPGCM_ERR_AUTH);
    CHECK(all_zero(buf, sizeof buf));
    uint8_t other_aad[8] = {1};
    memcpy(buf, ct, sizeof ct);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, other_aad, 8, buf, 64, tag, 16), ESPGCM_ERR_AUTH);
    CHECK(all_zero(buf, sizeof buf));
    memcpy(buf, ct, sizeof ct);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 11, aad, 8, buf, 64, tag, 16), ESPGCM_ERR_AUTH);
    CHECK(all_zero(buf, sizeof buf));
}

static void test_backends(void) {
    espgcm_backend list[5];
    size_t n = 99;
    CHECK_RC(espgcm_backend_available(NULL, 0, &n), ESPGCM_ERR_BUFFER_TOO_SMALL);
    CHECK(n >= 1 && n <= 4);
    CHECK_RC(espgcm_backend_available(NULL, 2, &n), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_backend_available(list, 5, NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_backend_available(list, 5, &n), ESPGCM_OK);
    CHECK(list[0] == espgcm_backend_best());
    CHECK(list[n - 1] == ESPGCM_BACKEND_SCALAR);
    CHECK(espgcm_backend_is_supported(ESPGCM_BACKEND_SCALAR));
    CHECK(!espgcm_backend_is_supported(5));
    CHECK(espgcm_backend_name(5) == NULL);

    for (espgcm_backend b = 0; b <= ESPGCM_BACKEND_ARMV8; b++) {
        const char *name = espgcm_backend_name(b);
        CHECK(name != NULL);
        espgcm_backend parsed = 99;
        CHECK_RC(espgcm_backend_from_name((const uint8_t *)name, strlen(name), &parsed), ESPGCM_OK);
        CHECK(parsed == b);
        espgcm_gcm *g = NULL;
        int rc = espgcm_gcm_new_with_backend(key16, 16, b, &g);
        if (espgcm_backend_is_supported(b)) {
            CHECK_RC(rc, ESPGCM_OK);
            espgcm_backend got = 99;
            CHECK_RC(espgcm_gcm_backend(g, &got), ESPGCM_OK);
            CHECK(got == b);
        } else {
            CHECK_RC(rc, ESPGCM_ERR_UNSUPPORTED_BACKEND);
            CHECK(g == NULL);
        }
        espgcm_gcm_free(g);
    }
    espgcm_backend parsed;
    CHECK_RC(espgcm_backend_from_name((const uint8_t *)"AESNI", 5, &parsed), ESPGCM_OK);
    CHECK(parsed == ESPGCM_BACKEND_AESNI);
    CHECK_RC(espgcm_backend_from_name((const uint8_t *)"aes", 3, &parsed), ESPGCM_ERR_UNKNOWN_BACKEND);
    CHECK_RC(espgcm_backend_from_name(NULL, 3, &parsed), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_backend_from_name((const uint8_t *)"\xff\xfe", 2, &parsed), ESPGCM_ERR_UNKNOWN_BACKEND);
}

static void test_verify_and_health(void) {
    espgcm_health before, after;
    CHECK_RC(espgcm_health_get(NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_health_get(&before), ESPGCM_OK);
    espgcm_gcm *g = NULL;
    CHECK_RC(espgcm_gcm_new(key16, 16, &g), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_set_verify(g, 9, 0), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK_RC(espgcm_gcm_set_verify(NULL, ESPGCM_VERIFY_FULL, 0), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_set_verify(g, ESPGCM_VERIFY_FULL, 0), ESPGCM_OK);
    uint8_t buf[256], tag[16];
    fill(buf, sizeof buf, 5);
    CHECK_RC(espgcm_gcm_encrypt(g, iv12, 12, NULL, 0, buf, sizeof buf, tag), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_decrypt(g, iv12, 12, NULL, 0, buf, sizeof buf, tag, 16), ESPGCM_OK);
    CHECK_RC(espgcm_health_get(&after), ESPGCM_OK);
    espgcm_backend b;
    CHECK_RC(espgcm_gcm_backend(g, &b), ESPGCM_OK);
    if (b != ESPGCM_BACKEND_SCALAR) {
        /* Both calls were cross-checked against the scalar backend: 16 blocks each. */
        CHECK(after.verified_messages >= before.verified_messages + 2);
        CHECK(after.verified_blocks >= before.verified_blocks + 32);
    }
    CHECK(after.faults == 0 && after.quarantined == 0 && !after.has_last_fault);
    CHECK_RC(espgcm_gcm_set_verify(g, ESPGCM_VERIFY_SAMPLE, 4096), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_set_verify(g, ESPGCM_VERIFY_OFF, 0), ESPGCM_OK);
    espgcm_gcm_free(g);
}

/* A batch of jobs of many lengths gives, job for job, what single calls give. */
static void test_batch(const espgcm_gcm *g) {
    enum { JOBS = 37 };
    static uint8_t data[JOBS][300], single[JOBS][300], aads[JOBS][12];
    espgcm_job jobs[JOBS];
    uint8_t single_tags[JOBS][16];
    for (size_t i = 0; i < JOBS; i++) {
        size_t len = (i * 23) % 300; /* 0 to 299 bytes: empty, partial and whole blocks */
        fill(data[i], len, (uint8_t)i);
        memcpy(single[i], data[i], len);
        fill(aads[i], 12, (uint8_t)(100 + i));
        memset(&jobs[i], 0, sizeof jobs[i]);
        memcpy(jobs[i].iv, iv12, 12);
        jobs[i].iv[0] = (uint8_t)i;
        jobs[i].aad = aads[i];
        jobs[i].aad_len = i % 3 == 0 ? 8 : 12;
        jobs[i].data = len ? data[i] : NULL;
        jobs[i].data_len = len;
        jobs[i].tag_len = 16;
        jobs[i].result = -1;
        CHECK_RC(espgcm_gcm_encrypt(g, jobs[i].iv, 12, aads[i], jobs[i].aad_len, single[i], len,
                                    single_tags[i]),
                 ESPGCM_OK);
    }
    CHECK_RC(espgcm_gcm_encrypt_batch(g, jobs, JOBS), ESPGCM_OK);
    for (size_t i = 0; i < JOBS; i++) {
        CHECK_RC(jobs[i].result, ESPGCM_OK);
        CHECK(memcmp(data[i], single[i], jobs[i].data_len) == 0);
        CHECK(memcmp(jobs[i].tag, single_tags[i], 16) == 0);
    }
    /* Forge two tags, truncate one, refuse one tag length: only those jobs fail. */
    jobs[3].tag[0] ^= 1;
    jobs[20].tag[15] ^= 0x80;
    jobs[5].tag_len = 8;
    jobs[6].tag_len = 2;
    CHECK_RC(espgcm_gcm_decrypt_batch(g, jobs, JOBS), ESPGCM_ERR_AUTH); /* job 3 fails first */
    for (size_t i = 0; i < JOBS; i++) {
        size_t len = jobs[i].data_len;
        if (i == 3 || i == 20) {
            CHECK_RC(jobs[i].result, ESPGCM_ERR_AUTH);
            CHECK(all_zero(data[i], len));
        } else if (i == 6) {
            CHECK_RC(jobs[i].result, ESPGCM_ERR_TAG_LENGTH);
            CHECK(memcmp(data[i], single[i], len) == 0); /* left as it was */
        } else {
            CHECK_RC(jobs[i].result, ESPGCM_OK);
            uint8_t expect[300];
            fill(expect, len, (uint8_t)i);
            CHECK(memcmp(data[i], expect, len) == 0);
        }
    }

    /* A job with a NULL buffer gets its own code; the others still run. */
    uint8_t a[40], b[40];
    fill(a, 40, 1);
    fill(b, 40, 2);
    espgcm_job two[2];
    memset(two, 0, sizeof two);
    two[0].data = NULL;
    two[0].data_len = 40;
    two[1].data = b;
    two[1].data_len = 40;
    two[1].tag_len = 16;
    CHECK_RC(espgcm_gcm_encrypt_batch(g, two, 2), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(two[0].result, ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(two[1].result, ESPGCM_OK);
    /* Two jobs over one buffer: refused before anything is written. */
    fill(a, 40, 1);
    memcpy(b, a, 40);
    two[0].data = a;
    two[0].data_len = 40;
    two[1].data = a + 20;
    two[1].data_len = 20;
    CHECK_RC(espgcm_gcm_encrypt_batch(g, two, 2), ESPGCM_ERR_OVERLAP);
    CHECK(memcmp(a, b, 40) == 0);
    CHECK_RC(two[0].result, ESPGCM_ERR_OVERLAP);
    CHECK_RC(two[1].result, ESPGCM_ERR_OVERLAP);
    /* A job whose AAD lies in another job's data. */
    two[1].data = b;
    two[1].aad = a + 4;
    two[1].aad_len = 4;
    CHECK_RC(espgcm_gcm_encrypt_batch(g, two, 2), ESPGCM_ERR_OVERLAP);
    CHECK_RC(espgcm_gcm_encrypt_batch(g, NULL, 0), ESPGCM_OK);
    CHECK_RC(espgcm_gcm_encrypt_batch(g, NULL, 1), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_gcm_decrypt_batch(NULL, two, 2), ESPGCM_ERR_NULL_PARAMETER);
}

static void test_strings(void) {
    CHECK(strcmp(espgcm_result_str(ESPGCM_OK), "success") == 0);
    CHECK(strstr(espgcm_result_str(ESPGCM_ERR_AUTH), "authentication failed") != NULL);
    CHECK(strstr(espgcm_result_str(ESPGCM_ERR_ESP_REPLAY), "replay") != NULL);
    CHECK(strcmp(espgcm_result_str(-5), "unknown espgcm result code") == 0);
    CHECK(strcmp(espgcm_version(), "0.1.0") == 0);
}

int main(void) {
    test_new_and_free();
    for (espgcm_backend b = 0; b < 4; b++) {
        if (!espgcm_backend_is_supported(b)) {
            continue;
        }
        espgcm_gcm *g = NULL;
        CHECK_RC(espgcm_gcm_new_with_backend(key16, 16, b, &g), ESPGCM_OK);
        test_encrypt_decrypt_errors(g);
        test_batch(g);
        espgcm_gcm_free(g);
    }
    test_backends();
    test_verify_and_health();
    test_strings();
    return finish("gcm_api");
}
