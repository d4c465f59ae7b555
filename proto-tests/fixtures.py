#!/usr/bin/env python3
"""Extracts BGP messages from pcaps of the interop tests into codec fixtures.

usage: fixtures.py OUT_DIR CAPTURE.pcap...

For each capture (named after the daemon), writes the first OPEN, the first UPDATE carrying
IPv4 NLRI and the first carrying MP_REACH_NLRI that the daemon sent (TCP source port 179 is
not reliable, so the daemon is the side that is not kbgp's address .2), as raw messages:
<daemon>-open.bin, <daemon>-update-v4.bin, <daemon>-update-v6.bin.
"""
import os
import struct
import sys


def packets(path):
    with open(path, 'rb') as f:
        data = f.read()
    magic = struct.unpack('<I', data[:4])[0]
    endian = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
    linktype = struct.unpack(endian + 'I', data[20:24])[0]
    off = 24
    while off + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + 'IIII', data[off:off + 16])
        yield linktype, data[off + 16:off + 16 + incl]
        off += 16 + incl


def tcp_payloads(path):
    """(src ip bytes, src port, seq, payload) per TCP segment, IPv4 over Ethernet."""
    for linktype, pkt in packets(path):
        if linktype != 1 or len(pkt) < 14 or pkt[12:14] != b'\x08\x00':
            continue
        ip = pkt[14:]
        ihl = (ip[0] & 0x0f) * 4
        if ip[9] != 6:
            continue
        total = struct.unpack('>H', ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack('>HHI', tcp[:8])
        doff = (tcp[12] >> 4) * 4
        payload = tcp[doff:]
        if payload:
            yield ip[12:16], sport, dport, seq, payload


def streams(path):
    """Reassembled byte streams per (src ip, sport, dport), in sequence order."""
    segs = {}
    for src, sport, dport, seq, payload in tcp_payloads(path):
        segs.setdefault((src, sport, dport), {})[seq] = payload
    for key, by_seq in segs.items():
        yield key, b''.join(by_seq[s] for s in sorted(by_seq))


def messages(stream):
    off = 0
    while off + 19 <= len(stream):
        length, kind = struct.unpack('>HB', stream[off + 16:off + 19])
        if stream[off:off + 16] != b'\xff' * 16 or length < 19:
            return
        yield kind, stream[off:off + length]
        off += length


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for cap in sys.argv[2:]:
        daemon = os.path.basename(cap).rsplit('.', 1)[0]
        found = {}
        for (src, _, _), stream in streams(cap):
            if src[3] == 2:  # kbgp's side of the lab
                continue
            for kind, msg in messages(stream):
                if kind == 1:
                    found.setdefault('open', msg)
                elif kind == 2:
                    wlen = struct.unpack('>H', msg[19:21])[0]
                    alen = struct.unpack('>H', msg[21 + wlen:23 + wlen])[0]
                    attrs = msg[23 + wlen:23 + wlen + alen]
                    nlri = msg[23 + wlen + alen:]
                    if nlri:
                        found.setdefault('update-v4', msg)
                    elif has_attr(attrs, 14):
                        found.setdefault('update-v6', msg)
        for name, msg in sorted(found.items()):
            path = os.path.join(out, f'{daemon}-{name}.bin')
            with open(path, 'wb') as f:
                f.write(msg)
            print(f'{path}: {len(msg)} octets')


def has_attr(attrs, code):
    off = 0
    while off + 3 <= len(attrs):
        flags, t = attrs[off], attrs[off + 1]
        if flags & 0x10:
            length = struct.unpack('>H', attrs[off + 2:off + 4])[0]
            hdr = 4
        else:
            length = attrs[off + 2]
            hdr = 3
        if t == code:
            return True
        off += hdr + length
    return False


if __name__ == '__main__':
    main()
