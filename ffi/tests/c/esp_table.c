/*
 * The SA table through the C ABI: inbound SAs found by SPI (and
 * destination), outbound policies (protect, bypass, discard) chosen by
 * selectors, a burst of packets of several SAs opened through the table,
 * removal, and the handles' lifetimes (an SA outlives the table's reference
 * and the other way round).
 */
#include "check.h"
#include "packets.h"

enum { FRAME = 1024 };

static const uint8_t key_a[20] = {0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1,
                                  0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 0xa1, 1, 2, 3, 4};
static const uint8_t key_b[28] = {0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2,
                                  0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2, 0xb2,
                                  0xb2, 0xb2, 0xb2, 0xb2, 5, 6, 7, 8};

static espgcm_sa_config *config(uint32_t spi, const uint8_t *km, size_t len) {
    espgcm_sa_config *cfg = NULL;
    CHECK_RC(espgcm_sa_config_new(spi, km, len, &cfg), ESPGCM_OK);
    return cfg;
}

/* A UDP packet from 10.1.0.1 to `dst`. */
static size_t packet_to(uint8_t *p, const uint8_t dst[4], uint16_t id, size_t data) {
    static const uint8_t src[4] = {10, 1, 0, 1};
    return make_udp4(p, src, dst, id, data, (uint8_t)id);
}

int main(void) {
    espgcm_sa_table *table = NULL;
    CHECK_RC(espgcm_sa_table_new(NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_table_new(&table), ESPGCM_OK);

    /* Inbound: SA A by SPI alone; SA B by SPI and destination 10.3.7.7 (this program plays
     * both ends: its packets go from 10.1.0.1 to 10.2.7.7 and 10.3.7.7). */
    espgcm_sa_config *cfg_a = config(0xa000, key_a, sizeof key_a);
    espgcm_sa_config *cfg_b = config(0xb000, key_b, sizeof key_b);
    espgcm_ip me = ip4(10, 3, 7, 7), elsewhere = ip4(10, 3, 7, 8);
    espgcm_inbound *rx_a = NULL, *rx_b = NULL;
    CHECK_RC(espgcm_sa_table_add_inbound(table, cfg_a, NULL, NULL, &rx_a), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_add_inbound(table, cfg_b, &me, NULL, &rx_b), ESPGCM_OK);
    CHECK(rx_a != NULL && rx_b != NULL);
    /* The same SPI and addresses twice: refused. */
    espgcm_inbound *dup = (espgcm_inbound *)(uintptr_t)1;
    CHECK_RC(espgcm_sa_table_add_inbound(table, cfg_a, NULL, NULL, &dup), ESPGCM_ERR_ESP_SA_EXISTS);
    CHECK(dup == NULL);
    espgcm_ip bad_ip = {.family = 0};
    CHECK_RC(espgcm_sa_table_add_inbound(table, cfg_a, &bad_ip, NULL, NULL), ESPGCM_ERR_INVALID_ARGUMENT);
    CHECK_RC(espgcm_sa_table_add_inbound(NULL, cfg_a, NULL, NULL, NULL), ESPGCM_ERR_NULL_PARAMETER);
    size_t n = 0;
    CHECK_RC(espgcm_sa_table_inbound_len(table, &n), ESPGCM_OK);
    CHECK(n == 2);

    /* Outbound: A for 10.2/16, B for 10.3/16, bypass 192.168/16, discard the rest. */
    espgcm_outbound *tx_a = NULL, *tx_b = NULL;
    CHECK_RC(espgcm_outbound_new(cfg_a, &tx_a), ESPGCM_OK);
    CHECK_RC(espgcm_outbound_new(cfg_b, &tx_b), ESPGCM_OK);
    espgcm_ip net1 = ip4(10, 1, 0, 0), net2 = ip4(10, 2, 0, 0), net3 = ip4(10, 3, 0, 0);
    espgcm_ip lan = ip4(192, 168, 0, 0);
    espgcm_selector s2, s3, slan;
    CHECK_RC(espgcm_selector_between(&net1, 16, &net2, 16, &s2), ESPGCM_OK);
    CHECK_RC(espgcm_selector_between(&net1, 16, &net3, 16, &s3), ESPGCM_OK);
    CHECK_RC(espgcm_selector_between(&net1, 16, &lan, 16, &slan), ESPGCM_OK);
    CHECK(s2.protocol == ESPGCM_PROTOCOL_ANY && s2.local_port_max == 65535);
    CHECK_RC(espgcm_selector_between(&net1, 16, NULL, 16, &s2), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_table_push_policy(table, &s2, 1, ESPGCM_ACTION_PROTECT, tx_a), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_push_policy(table, &s3, 1, ESPGCM_ACTION_PROTECT, tx_b), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_push_policy(table, &slan, 1, ESPGCM_ACTION_BYPASS, NULL), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_push_policy(table, NULL, 0, ESPGCM_ACTION_DISCARD, NULL), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_push_policy(table, &s2, 1, ESPGCM_ACTION_PROTECT, NULL), ESPGCM_ERR_NULL_PARAMETER);
    CHECK_RC(espgcm_sa_table_push_policy(table, &s2, 1, 9, NULL), ESPGCM_ERR_INVALID_ARGUMENT);
    espgcm_selector bad = s2;
    bad.protocol = 300;
    CHECK_RC(espgcm_sa_table_push_policy(table, &bad, 1, ESPGCM_ACTION_BYPASS, NULL), ESPGCM_ERR_INVALID_ARGUMENT);

    /* Six packets: to 10.2 (A), 10.3 (B), 10.2 (A), 10.3 (B), 10.3 (B), 10.2 (A). The SPD picks
     * each one's SA; each is sealed where it lies. */
    static const uint8_t dst2[4] = {10, 2, 7, 7}, dst3[4] = {10, 3, 7, 7};
    static uint8_t frames[7][FRAME], originals[7][FRAME];
    espgcm_packet pkts[7];
    const int to_b[6] = {0, 1, 0, 1, 1, 0};
    for (size_t i = 0; i < 6; i++) {
        size_t len = packet_to(frames[i] + ESPGCM_HEADROOM, to_b[i] ? dst3 : dst2, (uint16_t)i, 100 + 50 * i);
        memcpy(originals[i], frames[i] + ESPGCM_HEADROOM, len);
        pkts[i] = (espgcm_packet){frames[i], FRAME, ESPGCM_HEADROOM, len, -1};
        espgcm_action action = 99;
        espgcm_outbound *sa = NULL;
        CHECK_RC(espgcm_sa_table_lookup_outbound(table, frames[i] + ESPGCM_HEADROOM, len, &action, &sa),
                 ESPGCM_OK);
        CHECK(action == ESPGCM_ACTION_PROTECT && sa != NULL);
        CHECK_RC(espgcm_outbound_seal_burst(sa, &pkts[i], 1), ESPGCM_OK);
        espgcm_outbound_free(sa);
    }
    /* The SPI in each sealed packet is the SA the policy named. */
    for (size_t i = 0; i < 6; i++) {
        const uint8_t *p = frames[i] + pkts[i].start;
        uint32_t spi = (uint32_t)p[20] << 24 | (uint32_t)p[21] << 16 | (uint32_t)p[22] << 8 | p[23];
        CHECK(spi == (to_b[i] ? 0xb000u : 0xa000u));
    }
    /* A seventh packet, for an SPI the table does not know. */
    espgcm_sa_config *cfg_c = config(0xc000, key_b, 20); /* another key: A's is in use */
    CHECK_RC(espgcm_sa_config_set_transform(cfg_c, ESPGCM_TRANSFORM_AES_GMAC), ESPGCM_OK);
    espgcm_outbound *tx_c = NULL;
    CHECK_RC(espgcm_outbound_new(cfg_c, &tx_c), ESPGCM_OK);
    size_t len = packet_to(frames[6] + ESPGCM_HEADROOM, dst2, 6, 40);
    pkts[6] = (espgcm_packet){frames[6], FRAME, ESPGCM_HEADROOM, len, -1};
    CHECK_RC(espgcm_outbound_seal_burst(tx_c, &pkts[6], 1), ESPGCM_OK);
    uint8_t unknown[FRAME];
    size_t unknown_len = pkts[6].len;
    memcpy(unknown, frames[6] + pkts[6].start, unknown_len);

    /* Other destinations: bypass, discard. */
    static const uint8_t dst_lan[4] = {192, 168, 1, 1}, dst_far[4] = {8, 8, 8, 8};
    uint8_t pkt[200];
    espgcm_action action = 99;
    espgcm_outbound *sa = (espgcm_outbound *)(uintptr_t)1;
    len = packet_to(pkt, dst_lan, 50, 20);
    CHECK_RC(espgcm_sa_table_lookup_outbound(table, pkt, len, &action, &sa), ESPGCM_OK);
    CHECK(action == ESPGCM_ACTION_BYPASS && sa == NULL);
    len = packet_to(pkt, dst_far, 51, 20);
    CHECK_RC(espgcm_sa_table_lookup_outbound(table, pkt, len, &action, &sa), ESPGCM_OK);
    CHECK(action == ESPGCM_ACTION_DISCARD && sa == NULL);
    CHECK_RC(espgcm_sa_table_lookup_outbound(table, pkt, 5, &action, &sa), ESPGCM_ERR_ESP_TRUNCATED);
    CHECK_RC(espgcm_sa_table_lookup_outbound(table, pkt, len, NULL, &sa), ESPGCM_ERR_NULL_PARAMETER);

    /* One burst through the table: runs of one SA go together, the unknown SPI is refused. */
    CHECK_RC(espgcm_sa_table_open_burst(table, pkts, 7), ESPGCM_ERR_ESP_NO_SA);
    for (size_t i = 0; i < 6; i++) {
        CHECK_RC(pkts[i].result, ESPGCM_OK);
        CHECK(memcmp(frames[i] + pkts[i].start, originals[i], pkts[i].len) == 0);
    }
    CHECK_RC(pkts[6].result, ESPGCM_ERR_ESP_NO_SA);
    CHECK(pkts[6].len == unknown_len && memcmp(frames[6] + pkts[6].start, unknown, unknown_len) == 0);
    espgcm_esp_counters ca, cb;
    CHECK_RC(espgcm_inbound_stats(rx_a, &ca), ESPGCM_OK);
    CHECK_RC(espgcm_inbound_stats(rx_b, &cb), ESPGCM_OK);
    CHECK(ca.packets == 3 && cb.packets == 3);

    /* Single packets through the table; B only for its destination. */
    uint8_t sealed[400], opened[400];
    size_t sealed_len = 0, opened_len = 0;
    len = packet_to(pkt, dst3, 60, 80);
    CHECK_RC(espgcm_outbound_seal(tx_b, pkt, len, sealed, sizeof sealed, &sealed_len), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_open(table, sealed, sealed_len, opened, sizeof opened, &opened_len), ESPGCM_OK);
    CHECK(opened_len == len && memcmp(opened, pkt, len) == 0);
    CHECK_RC(espgcm_sa_table_open(table, sealed, sealed_len, opened, sizeof opened, &opened_len),
             ESPGCM_ERR_ESP_REPLAY);
    /* Sent to another address of ours, B's packet finds no SA (B is keyed to 10.3.7.7). */
    CHECK_RC(espgcm_outbound_seal(tx_b, pkt, len, sealed, sizeof sealed, &sealed_len), ESPGCM_OK);
    memcpy(sealed + 16, elsewhere.addr, 4); /* rewrite the outer destination, fix its checksum */
    sealed[10] = sealed[11] = 0;
    put16(sealed + 10, fold(sum16(0, sealed, 20)));
    CHECK_RC(espgcm_sa_table_open(table, sealed, sealed_len, opened, sizeof opened, &opened_len),
             ESPGCM_ERR_ESP_NO_SA);

    /* Removing: A's packets then find no SA; B's handle outlives its entry. */
    CHECK_RC(espgcm_sa_table_remove_inbound(table, 0xa000, NULL, NULL), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_remove_inbound(table, 0xa000, NULL, NULL), ESPGCM_ERR_ESP_NO_SA);
    CHECK_RC(espgcm_sa_table_remove_inbound(table, 0xb000, NULL, NULL), ESPGCM_ERR_ESP_NO_SA);
    CHECK_RC(espgcm_sa_table_inbound_len(table, &n), ESPGCM_OK);
    CHECK(n == 1);
    len = packet_to(pkt, dst2, 70, 30);
    CHECK_RC(espgcm_outbound_seal(tx_a, pkt, len, sealed, sizeof sealed, &sealed_len), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_open(table, sealed, sealed_len, opened, sizeof opened, &opened_len),
             ESPGCM_ERR_ESP_NO_SA);
    /* This thread's kept SAs are let go of on request (nothing to observe
       from C but that the call is there and harmless). */
    espgcm_sa_table_release_kept();
    CHECK_RC(espgcm_sa_table_open(table, sealed, sealed_len, opened, sizeof opened, &opened_len),
             ESPGCM_ERR_ESP_NO_SA);
    /* ... but A's own handle still opens it. */
    CHECK_RC(espgcm_inbound_open(rx_a, sealed, sealed_len, opened, sizeof opened, &opened_len), ESPGCM_OK);
    CHECK(opened_len == len && memcmp(opened, pkt, len) == 0);

    /* Without A's policy, packets to 10.2 fall through to the catch-all discard. */
    CHECK_RC(espgcm_sa_table_remove_policies_for(table, tx_a), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_lookup_outbound(table, pkt, len, &action, &sa), ESPGCM_OK);
    CHECK(action == ESPGCM_ACTION_DISCARD);
    /* A table with no policy at all: no policy covers anything. */
    espgcm_sa_table *empty = NULL;
    CHECK_RC(espgcm_sa_table_new(&empty), ESPGCM_OK);
    CHECK_RC(espgcm_sa_table_lookup_outbound(empty, pkt, len, &action, &sa), ESPGCM_ERR_ESP_NO_POLICY);
    CHECK_RC(espgcm_sa_table_open_burst(empty, &pkts[6], 1), ESPGCM_ERR_ESP_NO_SA);
    espgcm_sa_table_free(empty);

    /* The table goes first; the SAs it held stay usable through their handles. */
    espgcm_sa_table_free(table);
    espgcm_sa_table_free(NULL);
    len = packet_to(pkt, dst3, 80, 30);
    CHECK_RC(espgcm_outbound_seal(tx_b, pkt, len, sealed, sizeof sealed, &sealed_len), ESPGCM_OK);
    CHECK_RC(espgcm_inbound_open(rx_b, sealed, sealed_len, opened, sizeof opened, &opened_len), ESPGCM_OK);
    CHECK(opened_len == len && memcmp(opened, pkt, len) == 0);

    espgcm_inbound_free(rx_a);
    espgcm_inbound_free(rx_b);
    espgcm_outbound_free(tx_a);
    espgcm_outbound_free(tx_b);
    espgcm_outbound_free(tx_c);
    espgcm_sa_config_free(cfg_a);
    espgcm_sa_config_free(cfg_b);
    espgcm_sa_config_free(cfg_c);
    return finish("esp_table");
}
