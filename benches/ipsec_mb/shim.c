/*
 * The bench's C layer over intel-ipsec-mb's direct AES-GCM API
 * (benches/ipsec_mb.rs declares these functions; build.rs compiles this file
 * when the `ipsec-mb` feature is on).
 *
 * Why a shim: the library's GCM entry points are function pointers inside
 * IMB_MGR, a 52 KB struct whose layout changes between versions; reading them
 * from Rust would mean copying that layout. Here the C compiler reads the
 * header, and Rust sees five plain functions and one opaque, 64-byte aligned
 * key block whose size and alignment it checks against ipsecmb_key_size() and
 * ipsecmb_key_align().
 *
 * What is timed is exactly what an intel-ipsec-mb user calls per packet:
 * IMB_AES128_GCM_ENC / IMB_AES256_GCM_ENC (and _DEC) on a key expanded once
 * by IMB_AES128_GCM_PRE / IMB_AES256_GCM_PRE, with a gcm_context_data on the
 * stack, a 12-byte IV, and a 16-byte tag. Open compares the computed tag with
 * the expected one without an early exit, as a caller must.
 */

/* The header aligns struct gcm_key_data to 64 bytes only when LINUX is
 * defined, and the library is built that way (1024 bytes, align 64; without
 * it: 1008 bytes, align 1). */
#ifndef LINUX
#define LINUX
#endif

#include <stddef.h>
#include <stdint.h>
#include <intel-ipsec-mb.h>

_Static_assert(sizeof(struct gcm_key_data) == 1024, "struct gcm_key_data: expected 1024 bytes");
_Static_assert(_Alignof(struct gcm_key_data) == 64, "struct gcm_key_data: expected 64-byte alignment");

static IMB_MGR *mgr;
static IMB_ARCH mgr_arch;

/* The library's AVX-512 GCM code paths, with and without VAES (exported by
 * libIPSec_MB.so but not declared in the header; the SSE and AVX2 ones are).
 * Only compared with the manager's pointer, never called. */
#define GCM_ENC_ARGS                                                           \
        const struct gcm_key_data *, struct gcm_context_data *, uint8_t *,     \
                const uint8_t *, uint64_t, const uint8_t *, const uint8_t *,   \
                uint64_t, uint8_t *, uint64_t
void aes_gcm_enc_128_vaes_avx512(GCM_ENC_ARGS);
void aes_gcm_enc_128_avx512(GCM_ENC_ARGS);

/* Allocates and initialises the manager for the best code path on this CPU.
 * Returns 0, or the library's error number (or -1 if allocation failed).
 * Not thread-safe; the bench calls it once from main. */
int ipsecmb_init(void)
{
        if (mgr != NULL)
                return 0;
        mgr = alloc_mb_mgr(0);
        if (mgr == NULL)
                return -1;
        init_mb_mgr_auto(mgr, &mgr_arch);
        int err = imb_get_errno(mgr);
        if (err != 0) {
                free_mb_mgr(mgr);
                mgr = NULL;
        }
        return err;
}

/* The library version the program runs against, e.g. "1.3.0". */
const char *ipsecmb_version(void)
{
        return imb_get_version_str();
}

/* Which manager init_mb_mgr_auto picked and which GCM code it points to. */
const char *ipsecmb_arch(void)
{
        switch (mgr_arch) {
        case IMB_ARCH_SSE: return "sse";
        case IMB_ARCH_AVX: return "avx";
        case IMB_ARCH_AVX2: return "avx2";
        case IMB_ARCH_AVX512: return "avx512";
        default: return "unknown";
        }
}

const char *ipsecmb_gcm_impl(void)
{
        if (mgr == NULL)
                return "none";
        aes_gcm_enc_dec_t enc = mgr->gcm128_enc;
        if (enc == aes_gcm_enc_128_vaes_avx512)
                return "vaes_avx512";
        if (enc == aes_gcm_enc_128_avx512)
                return "avx512";
        if (enc == aes_gcm_enc_128_avx_gen4)
                return "avx_gen4";
        if (enc == aes_gcm_enc_128_sse)
                return "sse";
        return "other";
}

size_t ipsecmb_key_size(void)
{
        return sizeof(struct gcm_key_data);
}

size_t ipsecmb_key_align(void)
{
        return _Alignof(struct gcm_key_data);
}

/* Expands a 16- or 32-byte key into *out (round keys and powers of H).
 * Returns 0, or -1 for another key length or before ipsecmb_init. */
int ipsecmb_gcm_key(size_t keylen, const uint8_t *key, struct gcm_key_data *out)
{
        if (mgr == NULL)
                return -1;
        if (keylen == 16)
                IMB_AES128_GCM_PRE(mgr, key, out);
        else if (keylen == 32)
                IMB_AES256_GCM_PRE(mgr, key, out);
        else
                return -1;
        return 0;
}

/* Encrypts buf[0..len) in place with a 12-byte IV and writes the 16-byte
 * tag. keylen (16 or 32) must be the length given to ipsecmb_gcm_key. */
void ipsecmb_gcm_seal(const struct gcm_key_data *key, size_t keylen, const uint8_t iv[12], const uint8_t *aad,
                      size_t aadlen, uint8_t *buf, size_t len, uint8_t tag[16])
{
        struct gcm_context_data ctx;

        if (keylen == 16)
                IMB_AES128_GCM_ENC(mgr, key, &ctx, buf, buf, len, iv, aad, aadlen, tag, 16);
        else
                IMB_AES256_GCM_ENC(mgr, key, &ctx, buf, buf, len, iv, aad, aadlen, tag, 16);
}

/* Decrypts buf[0..len) in place and returns 1 if the computed tag equals
 * tag[0..16), 0 if not (the buffer then holds unverified plaintext; the
 * bench only opens valid input). */
int ipsecmb_gcm_open(const struct gcm_key_data *key, size_t keylen, const uint8_t iv[12], const uint8_t *aad,
                     size_t aadlen, uint8_t *buf, size_t len, const uint8_t tag[16])
{
        struct gcm_context_data ctx;
        uint8_t computed[16];
        uint8_t diff = 0;

        if (keylen == 16)
                IMB_AES128_GCM_DEC(mgr, key, &ctx, buf, buf, len, iv, aad, aadlen, computed, 16);
        else
                IMB_AES256_GCM_DEC(mgr, key, &ctx, buf, buf, len, iv, aad, aadlen, computed, 16);
        for (int i = 0; i < 16; i++)
                diff |= computed[i] ^ tag[i];
        return diff == 0;
}
