/*
 * ESP through the C ABI: a small data-plane loop that seals and opens bursts
 * of packets where they lie, in frames the program owns with headroom and
 * tailroom (as a DPDK or AF_XDP data plane would), checked byte for byte;
 * damaged and replayed packets refused; single-packet calls; frames with too
 * little room; bad arguments; SA configuration errors and counters.
 */
#include "check.h"
#include "packets.h"

enum { BURST = 32, ROUNDS = 8, FRAME = 2048 };

static const uint8_t keymat[36] = {
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b,
    0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27,
    0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0xca, 0xfe, 0xba, 0xbe}; /* AES-256 || salt */

static uint8_t frames[BURST][FRAME];
static uint8_t originals[BURST][FRAME];
static size_t original_len[BURST];

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The SA pair of one configuration: an outbound and an inbound with the same keys. */
static void make_pair(espgcm_sa_config *cfg, espgcm_outbound **tx, espgcm_inbound **rx) {
    CHECK_RC(espgcm_outbound_new(cfg, tx), ESPGCM_OK);
    CHECK_RC(espgcm_inbound_new(cfg, rx), ESPGCM_OK);
}

/* Seal and open ROUNDS bursts; `tunnel6` sends IPv6 packets through an IPv4 tunnel. */
static void packet_loop(const espgcm_outbound *tx, const espgcm_inbound *rx, uint32_t spi, int tunnel6) {
    static const uint8_t src4[4] = {10, 1, 0, 1}, dst4[4] = {10, 2, 0, 1};
    static const uint8_t src6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    static const uint8_t dst6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 2};
    static uint8_t kept[FRAME];
    size_t kept_len = 0;
    espgcm_packet pkts[BURST];
    uint32_t seq = 0;
    CHECK_RC(espgcm_outbound_next_sequence(tx, &(uint64_t){0}), ESPGCM_OK);
    for (int round = 0; round < ROUNDS; round++) {
        for (size_t i = 0; i < BURST; i++) {
            size_t data = (size_t)(round * 97 + i * 41) % 1400; /* 0 to 1399 bytes of UDP data */
            uint8_t *at = frames[i] + ESPGCM_HEADROOM;
            original_len[i] = tunnel6 ? make_udp6(at, src6, dst6, data, (uint8_t)(round + i))
                                      : make_udp4(at, src4, dst4, (uint16_t)(round * BURST + i), data,
                                                  (uint8_t)(round + i));
            memcpy(originals[i], at, original_len[i]);
            pkts[i] = (espgcm_packet){.frame = frames[i],
                                      .frame_len = FRAME,
                                      .start = ESPGCM_HEADROOM,
                                      .len = original_len[i],
                                      .result = -1};
        }
        CHECK_RC(espgcm_outbound_seal_burst(tx, pkts, BURST), ESPGCM_OK);
        for (size_t i = 0; i < BURST; i++) {
            const uint8_t *p = frames[i] + pkts[i].start;
            CHECK_RC(pkts[i].result, ESPGCM_OK);
            CHECK(pkts[i].start < ESPGCM_HEADROOM);          /* grew into the headroom */
            CHECK(pkts[i].start + pkts[i].len <= FRAME);
            CHECK(pkts[i].len > original_len[i]);
            CHECK(p[0] == 0x45 && p[9] == 50);               /* IPv4 carrying ESP */
            CHECK(be32(p + 20) == spi);                      /* SPI */
            CHECK(be32(p + 24) == ++seq);                    /* sequence numbers in order */
            /* What follows SPI, sequence number and IV is not the plaintext. */
            CHECK(memcmp(p + 36, originals[i] + (tunnel6 ? 0 : 20), 8) != 0);
        }
        /* Round 2: keep packet 7 to replay later; round 3: damage packet 5's ICV. */
        if (round == 2) {
            kept_len = pkts[7].len;
            memcpy(kept, frames[7] + pkts[7].start, kept_len);
        }
        uint8_t damaged[FRAME];
        size_t damaged_len = pkts[5].len;
        if (round == 3) {
            frames[5][pkts[5].start + pkts[5].len - 1] ^= 0x01;
            memcpy(damaged, frames[5] + pkts[5].start, damaged_len);
        }
        CHECK_RC(espgcm_inbound_open_burst(rx, pkts, BURST), round == 3 ? ESPGCM_ERR_AUTH : ESPGCM_OK);
        for (size_t i = 0; i < BURST; i++) {
            if (round == 3 && i == 5) {
                CHECK_RC(pkts[i].result, ESPGCM_ERR_AUTH);
                /* Nothing decrypted is released: the ESP payload, decrypted in place, is zeroed
                 * (the ICV takes 8 to 16 of the last 16 bytes); the outer IPv4 header, SPI,
                 * sequence number and IV (36 bytes) and the ICV are left as they arrived. */
                CHECK(pkts[i].len == damaged_len);
                CHECK(memcmp(frames[i] + pkts[i].start, damaged, 36) == 0);
                CHECK(all_zero(frames[i] + pkts[i].start + 36, damaged_len - 36 - 16));
                CHECK(memcmp(frames[i] + pkts[i].start + damaged_len - 8, damaged + damaged_len - 8, 8) == 0);
                continue;
            }
            CHECK_RC(pkts[i].result, ESPGCM_OK);
            CHECK(pkts[i].len == original_len[i]);
            CHECK(memcmp(frames[i] + pkts[i].start, originals[i], original_len[i]) == 0);
        }
    }
    /* A replayed packet is refused, through the single-packet call. */
    uint8_t out[FRAME];
    size_t out_len = 1;
    CHECK_RC(espgcm_inbound_open(rx, kept, kept_len, out, sizeof out, &out_len), ESPGCM_ERR_ESP_REPLAY);
    CHECK(out_len == 0);

    espgcm_esp_counters c;
    CHECK_RC(espgcm_outbound_stats(tx, &c), ESPGCM_OK);
    CHECK(c.packets == ROUNDS * BURST && c.rejected == 0);
    CHECK_RC(espgcm_inbound_stats(rx, &c), ESPGCM_OK);
    CHECK(c.packets == ROUNDS * BURST - 1);
    CHECK(c.auth_failed == 1 && c.replayed == 1 && c.rejected == 2);
    uint64_t next = 0;
    CHECK_RC(espgcm_outbound_next_sequence(tx, &next), ESPGCM_OK);
    CHECK(next == ROUNDS * BURST + 1);
}

/* Single-packet calls agree with bursts, and check their buffers. */
static void single_packets(const espgcm_outbound *tx, const espgcm_inbound *rx) {
    static const uint8_t src[4] = {10, 1, 0, 9}, dst[4] = {10, 2, 0, 9};
    uint8_t pkt[600], sealed[600 + ESPGCM_HEADROOM + ESPGCM_TAILROOM], opened[800];
    size_t len = make_udp4(pkt, src, dst, 77, 500, 3);
    size_t sealed_len = 0, opened_len = 0;

    CHECK_RC(espgcm_outbound_seal(tx, pkt, len, sealed, 10, &sealed_len), ESPGCM_ERR_BUFFER_TOO_SMALL);
    CHECK(sealed_len > len); /* the length it needs */
    CHECK_RC(espgcm_outbound_seal(tx, pkt, len, sealed, sizeof sealed, NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_outbound_seal(tx, NULL, len, sealed, sizeof sealed, &sealed_len),
             ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_outbound_seal(NULL, pkt, len, sealed, sizeof sealed, &sealed_len),
             ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_outbound_seal(tx, pkt, len, pkt + 10, 300, &sealed_len), ESPGCM_ERR_OVERLAP);
    CHECK_RC(espgcm_outbound_seal(tx, pkt, 10, sealed, sizeof sealed, &sealed_len), ESPGCM_ERR_ESP_TRUNCATED);
    CHECK_RC(espgcm_outbound_seal(tx, pkt, len, sealed, sizeof sealed, &sealed_len), ESPGCM_OK);
    /* IP header, SPI and sequence number, IV, UDP padded (with pad length and next header) to
     * 4 bytes, ICV. */
    CHECK(sealed_len == 20 + 8 + 8 + ((len - 20 + 2 + 3) & ~(size_t)3) + 16);

    CHECK_RC(espgcm_inbound_open(rx, sealed, sealed_len, opened, sealed_len - 1, &opened_len),
             ESPGCM_ERR_BUFFER_TOO_SMALL);
    CHECK(opened_len == sealed_len);
    CHECK_RC(espgcm_inbound_open(rx, sealed, sealed_len, opened, sizeof opened, &opened_len), ESPGCM_OK);
    CHECK(opened_len == len && memcmp(opened, pkt, len) == 0);

    /* A damaged checksum is refused before anything is encrypted. */
    pkt[len - 1] ^= 0x55;
    CHECK_RC(espgcm_outbound_seal(tx, pkt, len, sealed, sizeof sealed, &sealed_len),
             ESPGCM_ERR_ESP_CHECKSUM_BEFORE_ENCRYPT);
    CHECK(sealed_len == 0);
}

/* Frames with little or no room, and packets that are not where they say. */
static void frames_and_arguments(const espgcm_outbound *tx, const espgcm_inbound *rx) {
    static const uint8_t src[4] = {10, 1, 0, 3}, dst[4] = {10, 2, 0, 3};
    static uint8_t tight[3][300];
    uint8_t orig[300];
    espgcm_packet p[3];
    size_t len = 0;
    for (size_t i = 0; i < 3; i++) {
        len = make_udp4(tight[i], src, dst, (uint16_t)(900 + i), 100, 9); /* at the frame's start */
    }
    memcpy(orig, tight[0], len);
    /* 0: room after the packet only (it moves to fit); 1: no room at all; 2: outside its frame. */
    p[0] = (espgcm_packet){tight[0], len + 100, 0, len, -1};
    p[1] = (espgcm_packet){tight[1], len, 0, len, -1};
    p[2] = (espgcm_packet){tight[2], len, 10, len, -1};
    CHECK_RC(espgcm_outbound_seal_burst(tx, p, 3), ESPGCM_ERR_ESP_TOO_LARGE);
    CHECK_RC(p[0].result, ESPGCM_OK);
    CHECK_RC(p[1].result, ESPGCM_ERR_ESP_TOO_LARGE);
    CHECK_RC(p[2].result, ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK(p[1].start == 0 && p[1].len == len);
    /* Open the first one back, where it now lies. */
    CHECK_RC(espgcm_inbound_open_burst(rx, p, 1), ESPGCM_OK);
    CHECK(p[0].len == len && memcmp(tight[0] + p[0].start, orig, len) == 0);

    /* A NULL frame: that packet's code; the others still run. */
    len = make_udp4(tight[0] + 50, src, dst, 950, 60, 1);
    p[0] = (espgcm_packet){NULL, 300, 0, 10, -1};
    p[1] = (espgcm_packet){tight[0], 300, 50, len, -1};
    CHECK_RC(espgcm_outbound_seal_burst(tx, p, 2), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(p[0].result, ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(p[1].result, ESPGCM_OK);
    /* Two packets in one frame: refused, nothing done. */
    len = make_udp4(tight[2], src, dst, 951, 20, 1);
    memcpy(orig, tight[2], len);
    p[0] = (espgcm_packet){tight[2], 150, 0, len, -1};
    p[1] = (espgcm_packet){tight[2] + 100, 150, 0, 20, -1};
    CHECK_RC(espgcm_outbound_seal_burst(tx, p, 2), ESPGCM_ERR_OVERLAP);
    CHECK_RC(p[0].result, ESPGCM_ERR_OVERLAP);
    CHECK_RC(p[1].result, ESPGCM_ERR_OVERLAP);
    CHECK(memcmp(tight[2], orig, len) == 0 && p[0].start == 0 && p[0].len == len);
    CHECK_RC(espgcm_outbound_seal_burst(tx, NULL, 0), ESPGCM_OK);
    CHECK_RC(espgcm_outbound_seal_burst(tx, NULL, 4), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_outbound_seal_burst(NULL, p, 2), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_inbound_open_burst(rx, NULL, 0), ESPGCM_OK);
}

static void configuration(void) {
    espgcm_sa_config *cfg = NULL;
    char msg[200];
    size_t msg_len = 0;
    CHECK_RC(espgcm_sa_config_new(0x1000, NULL, 20, &cfg), ESPGCM_ERR_NULL_PARAMETER);
    CHECK(cfg == NULL);
    CHECK_RC(espgcm_sa_config_new(5, keymat, 20, &cfg), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_validate(cfg, msg, sizeof msg, &msg_len), ESPGCM_ERR_ESP_INVALID);
    CHECK(strstr(msg, "invalid spi") != NULL && msg_len == strlen(msg));
    /* A short message buffer gets a cut, terminated message and the full length. */
    char small[8];
    CHECK_RC(espgcm_sa_config_validate(cfg, small, sizeof small, &msg_len), ESPGCM_ERR_ESP_INVALID);
    CHECK(strlen(small) == 7 && msg_len > 7);
    CHECK_RC(espgcm_sa_config_validate(cfg, NULL, 0, NULL), ESPGCM_ERR_ESP_INVALID);
    espgcm_outbound *tx = (espgcm_outbound *)(uintptr_t)1;
    CHECK_RC(espgcm_outbound_new(cfg, &tx), ESPGCM_ERR_ESP_INVALID);
    CHECK(tx == NULL);
    espgcm_sa_config_free(cfg);

    CHECK_RC(espgcm_sa_config_new(0x1000, keymat, 21, &cfg), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_validate(cfg, msg, sizeof msg, NULL), ESPGCM_ERR_ESP_INVALID);
    CHECK(strstr(msg, "keymat") != NULL);
    espgcm_sa_config_free(cfg);

    CHECK_RC(espgcm_sa_config_new(0x1000, keymat, 20, &cfg), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_set_icv_len(cfg, 10), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_validate(cfg, msg, sizeof msg, NULL), ESPGCM_ERR_ESP_INVALID);
    CHECK(strstr(msg, "icv_len") != NULL);
    CHECK_RC(espgcm_sa_config_set_icv_len(cfg, 12), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_set_transform(cfg, 7), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK_RC(espgcm_sa_config_set_backend(cfg, 9), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK_RC(espgcm_sa_config_set_verify(cfg, 3, 0), ESPGCM_ERR_INVALID_ARGUMENT);
    espgcm_ip bad = {.family = 5};
    espgcm_ip good = ip4(192, 0, 2, 1);
    CHECK_RC(espgcm_sa_config_set_tunnel(cfg, &bad, &good), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK_RC(espgcm_sa_config_set_tunnel(cfg, NULL, &good), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_config_set_nat_original(cfg, &good, NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_config_set_nat_original(cfg, NULL, NULL), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_set_esn(NULL, true), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_config_validate(cfg, msg, sizeof msg, NULL), ESPGCM_OK);
    CHECK(msg[0] == 0);

    /* A second sender under the same key and salt would repeat IVs: refused. */
    espgcm_outbound *first = NULL, *second = NULL;
    CHECK_RC(espgcm_outbound_new(cfg, &first), ESPGCM_OK);
    CHECK_RC(espgcm_outbound_new(cfg, &second), ESPGCM_ERR_ESP_KEY_IN_USE);
    CHECK(second == NULL);
    /* Resuming after a restart: forward only. */
    CHECK_RC(espgcm_outbound_skip_to_sequence(first, 1000), ESPGCM_OK);
    CHECK_RC(espgcm_outbound_skip_to_sequence(first, 999), ESPGCM_ERR_ESP_INVALID);
    uint64_t next = 0;
    CHECK_RC(espgcm_outbound_next_sequence(first, &next), ESPGCM_OK);
    CHECK(next == 1000);
    espgcm_outbound_free(first);
    /* Once the first is gone, the key is free again. */
    CHECK_RC(espgcm_outbound_new(cfg, &second), ESPGCM_OK);
    espgcm_outbound_free(second);
    espgcm_sa_config_free(cfg);
    espgcm_sa_config_free(NULL);
    espgcm_outbound_free(NULL);
    espgcm_inbound_free(NULL);
}

int main(void) {
    /* Transport mode, AES-256, verify every message against the scalar backend. */
    espgcm_sa_config *cfg = NULL;
    espgcm_outbound *tx = NULL;
    espgcm_inbound *rx = NULL;
    CHECK_RC(espgcm_sa_config_new(0x5001, keymat, sizeof keymat, &cfg), ESPGCM_OK);
    CHECK_RC(espgcm_sa_config_set_verify(cfg, ESPGCM_VERIFY_FULL, 0), ESPGCM_OK);
    make_pair(cfg, &tx, &rx);
    espgcm_sa_config_free(cfg); /* the SAs keep their own copies */
    packet_loop(tx, rx, 0x5001, 0);
    single_packets(tx, rx);
    frames_and_arguments(tx, rx);
    espgcm_outbound_free(tx);
    espgcm_inbound_free(rx);

    /* Tunnel mode over IPv4 carrying IPv6, AES-128, 12-byte ICV, on each supported backend. */
    for (espgcm_backend b = 0; b < 4; b++) {
        if (!espgcm_backend_is_supported(b)) {
            continue;
        }
        espgcm_ip outer_src = ip4(203, 0, 113, 1), outer_dst = ip4(198, 51, 100, 9);
        uint8_t km[20];
        memcpy(km, keymat, 20);
        km[0] = (uint8_t)b; /* a key per SA */
        CHECK_RC(espgcm_sa_config_new(0x6000 + b, km, sizeof km, &cfg), ESPGCM_OK);
        CHECK_RC(espgcm_sa_config_set_tunnel(cfg, &outer_src, &outer_dst), ESPGCM_OK);
        CHECK_RC(espgcm_sa_config_set_icv_len(cfg, 12), ESPGCM_OK);
        CHECK_RC(espgcm_sa_config_set_backend(cfg, b), ESPGCM_OK);
        make_pair(cfg, &tx, &rx);
        espgcm_sa_config_free(cfg);
        packet_loop(tx, rx, 0x6000 + b, 1);
        espgcm_outbound_free(tx);
        espgcm_inbound_free(rx);
    }
    configuration();
    return finish("esp_loop");
}
