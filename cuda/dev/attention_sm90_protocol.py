#!/usr/bin/env python3
"""The barrier protocol of cuda/attention_sm90.cu, as a randomized interleaving model (docs/log/attention_sm90.md §7).

Mirrors the kernel's waits and arrivals per role: the producer, the V-fixup warp, NWG consumer warpgroups (2 or 3)
with round-robin pingpong turns and the tile-release path; a "yield None" is an asynchronous product in flight. TMA
completions arrive in random order at random times. For random item lists (each item: one key-tile count per
warpgroup, zeros included), ring sizes (4,4), (2,2), (1,1), (3,2) and pingpong on / off it checks: no deadlock, every
wgmma operand read finds the tile it expects and it is not overwritten before its release, no named-barrier arrival
left at the end. Mutations (warpgroup 0's final turn dropped, a turn passed to the wrong warpgroup) are caught.

    python3 cuda/dev/attention_sm90_protocol.py [TRIALS]   # ~20 s at 1500; prints "bad 0"; run after any change
"""
import random
class MB:
    def __init__(s,count): s.count=count; s.pend=0; s.done=0
    def arrive(s):
        s.pend+=1
        assert s.pend<=s.count
        if s.pend==s.count: s.pend=0; s.done+=1
    def ready(s,parity): return (s.done&1)!=parity
class NB:
    def __init__(s): s.cnt=0; s.gen=0
    def arrive(s):
        s.cnt+=128
        if s.cnt==256: s.cnt=0; s.gen+=1
class Ring:
    def __init__(s,n): s.n=n; s.i=0; s.ph=0
    def next(s):
        s.i+=1
        if s.i==s.n: s.i=0; s.ph^=1
def sim(items, KS, VS, PP, seed, NWG):
    rnd=random.Random(seed)
    fullK=[MB(1) for _ in range(KS)]; emptyK=[MB(4*NWG) for _ in range(KS)]
    fullV=[MB(1) for _ in range(VS)]; vready=[MB(1) for _ in range(VS)]; emptyV=[MB(4*NWG) for _ in range(VS)]
    qfull=[MB(1) for _ in range(2)]; qempty=[MB(4*NWG) for _ in range(2)]
    turn=[NB() for _ in range(NWG)]
    kcont=[None]*KS; vcont=[None]*VS; qcont=[None,None]
    inflight=[]   # pending TMA completions: (barrier)
    def producer():
        kr=Ring(KS); vr=Ring(VS)
        for it,kts in enumerate(items):
            kt=max(kts); slot=it&1
            yield lambda: qempty[slot].ready(((it>>1)&1)^1)
            qcont[slot]=it; inflight.append(qfull[slot])
            for n in range(kt+1):
                if n<kt:
                    i,ph=kr.i,kr.ph
                    yield lambda: emptyK[i].ready(ph^1)
                    kcont[i]=(it,n); inflight.append(fullK[i]); kr.next()
                if n>0:
                    i,ph=vr.i,vr.ph
                    yield lambda: emptyV[i].ready(ph^1)
                    vcont[i]=(it,n-1); inflight.append(fullV[i]); vr.next()
    def fixup():
        vr=Ring(VS)
        for it,kts in enumerate(items):
            for n in range(max(kts)):
                i,ph=vr.i,vr.ph
                yield lambda: fullV[i].ready(ph)
                assert vcont[i]==(it,n)
                vready[i].arrive(); vr.next()
    def consumer(wg):
        kr=Ring(KS); vr=Ring(VS)
        def arr(b):  # 4 warps
            for _ in range(4): b.arrive()
        nxt=(wg+1)%NWG
        if PP and wg==NWG-1: turn[0].arrive()
        def tw():
            b=turn[wg]; g=b.gen; b.arrive()
            if b.cnt!=0 or b.gen!=g+1:   # still waiting
                yield lambda: b.gen>g
        for it,kts in enumerate(items):
            kt=max(kts); mine=kts[wg]; slot=it&1
            pp=PP and min(kts)>0; nt=kt if pp else mine
            yield lambda: qfull[slot].ready((it>>1)&1)
            if nt>0:
                assert qcont[slot]==it
                i,ph=kr.i,kr.ph
                yield lambda: fullK[i].ready(ph)
                if pp: yield from tw()
                assert kcont[i]==(it,0)
                if pp: turn[nxt].arrive()
                yield None  # S in flight
                assert kcont[i]==(it,0); arr(emptyK[i]); kr.next()
                for n in range(1,nt):
                    i,ph=kr.i,kr.ph
                    yield lambda: fullK[i].ready(ph)
                    if pp: yield from tw()
                    assert kcont[i]==(it,n)
                    j,vph=vr.i,vr.ph
                    yield lambda: vready[j].ready(vph)
                    assert vcont[j]==(it,n-1)
                    if pp: turn[nxt].arrive()
                    yield None
                    assert kcont[i]==(it,n); arr(emptyK[i]); kr.next()
                    yield None
                    assert vcont[j]==(it,n-1); arr(emptyV[j]); vr.next()
                j,vph=vr.i,vr.ph
                yield lambda: vready[j].ready(vph)
                assert vcont[j]==(it,nt-1)
                yield None
                assert vcont[j]==(it,nt-1); arr(emptyV[j]); vr.next()
                assert qcont[slot]==it
            arr(qempty[slot])
            for n in range(nt,kt):
                i,ph=kr.i,kr.ph
                yield lambda: fullK[i].ready(ph)
                assert kcont[i]==(it,n)
                arr(emptyK[i]); kr.next()
                j,vph=vr.i,vr.ph
                yield lambda: vready[j].ready(vph)
                assert vcont[j]==(it,n)
                arr(emptyV[j]); vr.next()
        if PP and wg==0: yield from tw()
    actors=[producer(),fixup()]+[consumer(w) for w in range(NWG)]
    A=len(actors); conds=[None]*A; done=[False]*A
    steps=0
    while not all(done):
        steps+=1
        runnable=[a for a in range(A) if not done[a] and (conds[a] is None or conds[a]())]
        if inflight and (not runnable or rnd.random()<0.3):
            b=inflight.pop(rnd.randrange(len(inflight)) if rnd.random()<0.2 else 0); b.arrive(); continue
        if not runnable:
            return "DEADLOCK", [conds[a] is not None for a in range(A)], steps
        a=rnd.choice(runnable)
        try:
            conds[a]=next(actors[a])
        except StopIteration:
            done[a]=True; conds[a]=None
    for t in turn: assert t.cnt==0, "dangling named-barrier arrivals"
    return "ok",steps
import sys
random.seed(7)
bad=0
TRIALS=int(sys.argv[1]) if len(sys.argv)>1 else 2000
for trial in range(TRIALS):
    for NWG in (2,3):
        n=random.randint(1,12)
        items=[]
        for _ in range(n):
            kind=random.random()
            k=random.randint(1,6)
            if kind<0.45: items.append((k,)*NWG)                       # every warpgroup, equal tiles
            elif kind<0.65: items.append(tuple(k+(w>=random.randint(0,NWG)) for w in range(NWG)))  # one more after a block
            elif kind<0.75: items.append(tuple(random.randint(0,6) for _ in range(NWG)))  # anything, zeros included
            elif kind<0.9: one=random.randrange(NWG); items.append(tuple(k if w==one else 0 for w in range(NWG)))  # decode
            else: items.append(tuple(k if w<random.randint(1,NWG) else 0 for w in range(NWG)))  # a span's last level
            if max(items[-1])==0: items[-1]=(1,)+items[-1][1:]
        for KS,VS in ((4,4),(2,2),(1,1),(3,2)):
            for PP in (True,False):
                r=sim(items,KS,VS,PP,trial,NWG)
                if r[0]!="ok":
                    bad+=1
                    if bad<5: print(r,items,KS,VS,PP,NWG)
print("bad",bad)
