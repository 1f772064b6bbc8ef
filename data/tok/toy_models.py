import struct, sentencepiece as spm
def varint(v):
    o=b''
    while True:
        c=v&0x7f; v>>=7
        if v: o+=bytes([c|0x80])
        else: return o+bytes([c])
def key(f,wt): return varint(f<<3|wt)
def lenf(f,b): return key(f,2)+varint(len(b))+b
def piece(s,score,t=1):
    m=lenf(1,s.encode())+key(2,5)+struct.pack('<f',score)
    if t!=1: m+=key(3,0)+varint(t)
    return lenf(1,m)
def specs(cm=None):
    t=key(3,0)+varint(1)
    ns=lenf(1,b'identity')+(lenf(2,cm) if cm is not None else b'')
    return lenf(2,t)+lenf(3,ns)
P=[("<unk>",0,2),("</s>",0,3),("<pad>",0,3),("\u2581",-3,1),("a",-1,1),("b",-2,1),("ab",-1.5,1),("x",-1,1),("y",-1,1),("xy",-2,1),("q",-0.5,5)]
base=b''.join(piece(*p) for p in P)
sp=spm.SentencePieceProcessor(model_proto=base+specs())
for t in ["ab a","xy","abccqc ba","   ","","  a   b  "]:
    print(repr(t), sp.encode(t))
print(sp.encode(b"a\xff"))
units=[0]*98
units[0]=1<<10; units[1^ord('a')]=ord('a')|1<<8|1<<10; units[(1^ord('a'))^1]=0x80000000|0
cm=struct.pack('<I',98*4)+struct.pack('<98I',*units)+b"b\0"
sp=spm.SentencePieceProcessor(model_proto=base+specs(cm))
print(sp.encode("xax a", out_type=str))
cm=struct.pack('<I',98*4)+struct.pack('<98I',*units)+b"bb"
sp=spm.SentencePieceProcessor(model_proto=base+specs(cm))
print(sp.encode("a", out_type=str))
