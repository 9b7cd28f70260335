/*
 * IPv4 and IPv6 UDP packets with correct checksums, built here in C (an
 * Internet checksum written independently of the library's), for the ESP
 * tests of the C ABI.
 */
#ifndef ESPGCM_TEST_PACKETS_H
#define ESPGCM_TEST_PACKETS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n) {
    for (size_t i = 0; i + 1 < n; i += 2) {
        sum += (uint32_t)p[i] << 8 | p[i + 1];
    }
    if (n & 1) {
        sum += (uint32_t)p[n - 1] << 8;
    }
    return sum;
}

static inline uint16_t fold(uint32_t sum) {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static inline void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* The UDP header and `data_len` bytes of data (from `seed`) at `u`, with its checksum over
 * the pseudo-header sum `pseudo`. */
static inline void udp(uint8_t *u, uint32_t pseudo, uint16_t sport, uint16_t dport, size_t data_len,
                       uint8_t seed) {
    size_t udp_len = 8 + data_len;
    put16(u, sport);
    put16(u + 2, dport);
    put16(u + 4, (uint16_t)udp_len);
    put16(u + 6, 0);
    for (size_t i = 0; i < data_len; i++) {
        u[8 + i] = (uint8_t)(seed + 7 * i);
    }
    uint16_t c = fold(sum16(pseudo + 17 + (uint32_t)udp_len, u, udp_len));
    put16(u + 6, c == 0 ? 0xffff : c);
}

/* An IPv4/UDP packet at `p`; returns its length. */
static inline size_t make_udp4(uint8_t *p, const uint8_t src[4], const uint8_t dst[4], uint16_t id,
                               size_t data_len, uint8_t seed) {
    size_t total = 20 + 8 + data_len;
    memset(p, 0, 20);
    p[0] = 0x45;
    put16(p + 2, (uint16_t)total);
    put16(p + 4, id);
    p[6] = 0x40; /* DF */
    p[8] = 64;
    p[9] = 17;
    memcpy(p + 12, src, 4);
    memcpy(p + 16, dst, 4);
    put16(p + 10, fold(sum16(0, p, 20)));
    udp(p + 20, sum16(sum16(0, src, 4), dst, 4), (uint16_t)(40000 + id % 1000), 4500 + 1, data_len, seed);
    return total;
}

/* An IPv6/UDP packet at `p`; returns its length. */
static inline size_t make_udp6(uint8_t *p, const uint8_t src[16], const uint8_t dst[16],
                               size_t data_len, uint8_t seed) {
    size_t payload = 8 + data_len;
    memset(p, 0, 40);
    p[0] = 0x60;
    put16(p + 4, (uint16_t)payload);
    p[6] = 17;
    p[7] = 64;
    memcpy(p + 8, src, 16);
    memcpy(p + 24, dst, 16);
    udp(p + 40, sum16(sum16(0, src, 16), dst, 16), 5353, 6363, data_len, seed);
    return 40 + payload;
}

static inline espgcm_ip ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    espgcm_ip ip;
    memset(&ip, 0, sizeof ip);
    ip.family = 4;
    ip.addr[0] = a;
    ip.addr[1] = b;
    ip.addr[2] = c;
    ip.addr[3] = d;
    return ip;
}

#endif
