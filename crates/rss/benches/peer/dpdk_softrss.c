/* Peer benchmark: DPDK 22.11 rte_softrss / rte_softrss_be (header-only,
 * from Debian bookworm's libdpdk-dev), same method as sluice-rss's criterion
 * bench: 1024 pseudo-random tuples per pass, independent hashes
 * XOR-accumulated, ns per hash, best of 25 passes x 2000 reps. Also checks
 * the Microsoft IPv4 vector. DPDK's GFNI code (rte_thash_gfni) needs a CPU
 * with GFNI and is not built here.
 *
 * Build and run (no DPDK libraries are linked: the functions are inline):
 *   cd /tmp && apt-get download libdpdk-dev && dpkg-deb -x libdpdk-dev_*.deb dpdkx
 *   mkdir -p inc/bsd && printf '#include <string.h>\nsize_t strlcpy(char *, const char *, size_t);\nsize_t strlcat(char *, const char *, size_t);\n' > inc/bsd/string.h
 *   gcc -O3 -march=native -Iinc -Idpdkx/usr/include/dpdk -Idpdkx/usr/include/x86_64-linux-gnu/dpdk \
 *       -include rte_config.h crates/rss/benches/peer/dpdk_softrss.c -o dpdk_softrss && ./dpdk_softrss
 */
#include <stdio.h>
#include <stdint.h>
#include <time.h>
#include <rte_thash.h>

static uint8_t ms_key[40] = {0x6d,0x5a,0x56,0xda,0x25,0x5b,0x0e,0xc2,0x41,0x67,0x25,0x3d,0x43,0xa3,0x8f,0xb0,
 0xd0,0xca,0x2b,0xcb,0xae,0x7b,0x30,0xb4,0x77,0xcb,0x2d,0xa3,0x80,0x30,0xf2,0x0c,0x6a,0x42,0xb7,0x3b,0xbe,0xac,0x01,0xfa};
#define N 1024
static uint32_t v4[N][3], v6[N][9];
static uint64_t s = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void){ s^=s>>12; s^=s<<25; s^=s>>27; return s*0x2545f4914f6cdd1dull; }
static double now(void){ struct timespec t; clock_gettime(CLOCK_MONOTONIC,&t); return t.tv_sec*1e9+t.tv_nsec; }
int main(void){
  for(int i=0;i<N;i++){ for(int w=0;w<3;w++) v4[i][w]=(uint32_t)rnd(); for(int w=0;w<9;w++) v6[i][w]=(uint32_t)rnd(); }
  /* MS IPv4 vector 1: 66.9.149.187:2794 -> 161.142.100.80:1766 = 0x51ccc178 */
  uint32_t t[3] = {0x420995bb, 0xa18e6450, (2794u<<16)|1766u};
  printf("check rte_softrss MS v4 #1 = 0x%08x (want 0x51ccc178)\n", rte_softrss(t,3,ms_key));
  uint8_t be_key[40]; rte_convert_rss_key((uint32_t*)ms_key,(uint32_t*)be_key,40);
  printf("check rte_softrss_be = 0x%08x\n", rte_softrss_be(t,3,be_key));
  volatile uint32_t sink=0;
  const char *names[4]={"rte_softrss ipv4","rte_softrss_be ipv4","rte_softrss ipv6","rte_softrss_be ipv6"};
  for(int k=0;k<4;k++){
    double best=1e30;
    for(int pass=0;pass<25;pass++){
      double t0=now(); uint32_t acc=0;
      for(int r=0;r<2000;r++) for(int i=0;i<N;i++){
        switch(k){case 0: acc^=rte_softrss(v4[i],3,ms_key);break; case 1: acc^=rte_softrss_be(v4[i],3,be_key);break;
                  case 2: acc^=rte_softrss(v6[i],9,ms_key);break; default: acc^=rte_softrss_be(v6[i],9,be_key);}
      }
      double ns=(now()-t0)/(2000.0*N); sink^=acc; if(ns<best) best=ns;
    }
    printf("%-22s %.2f ns/hash\n", names[k], best);
  }
  return (int)(sink&0);
}
