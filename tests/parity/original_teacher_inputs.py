#!/usr/bin/env python
"""The original TelME's teacher inputs for MELD CSVs, restated on their own, without telme_hf.

Restated from the facts of the original code (its `preprocessing`, `encode_right_truncated` and speaker-index
bookkeeping), not from telme_hf's implementation, so that telme_hf's reference mode can be checked against it:

1. each CSV is read with `csv.reader` from the file opened as UTF-8 text (universal newlines), cells untouched;
2. speaker index: the position of the `Speaker` string in a running list of first appearances; when a new
   `Dialogue_ID` starts, its first row is indexed against the previous dialogue's list (appended to it) and only
   then are the list and the history emptied;
3. text of utterance k: `"".join("<s{i+1}> " + utt + " " for each turn 1..k).strip() + " </s> Now <s{i_k+1}> feels"`;
4. tokens: `tokenizer.tokenize(text)`, the last `max_length` (511) kept, then the `<mask>` token.

Step 4 needs transformers 4.27's `tokenize`, which split on the added tokens and stripped the whitespace on both
sides of the speaker tokens (added as plain strings) but not around `</s>` (an `AddedToken` without strip flags),
and stripped the left of `<mask>`. `--rules installed` calls the installed transformers' `tokenize` (exact only
under transformers 4.27.x, the original's version); `--rules restated` (the default) restates those 4.27 rules
here and uses the installed tokenizer only to BPE-encode the plain-text pieces between added tokens.

Prints one JSON list of token strings per utterance, in CSV order (train, dev, test or the files given).

    python tests/parity/original_teacher_inputs.py --tokenizer roberta-large train_sent_emo.csv > original.jsonl
    /path/to/py-with-transformers-4.27/bin/python tests/parity/original_teacher_inputs.py --rules installed \\
        --tokenizer /path/to/roberta-large dev_sent_emo.csv > original.jsonl
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import re
import sys


NUM_SPEAKER_TOKENS = 9


def read_rows(path):
    """(Dialogue_ID, Speaker, Utterance) of every data row, as the original's csv.reader gave them."""
    with open(path, encoding="utf-8") as stream:  # text mode: universal newlines, as the original
        rows = list(csv.reader(stream))
    header = rows[0]
    dialogue, speaker, utterance = (header.index(name) for name in ("Dialogue_ID", "Speaker", "Utterance"))
    return [(row[dialogue], row[speaker], row[utterance]) for row in rows[1:] if row]


def teacher_strings(rows):
    """The string the original tokenised for each utterance, with its speaker-index carry-over."""
    speakers, history, previous = [], [], None
    strings = []
    for dialogue, speaker, utterance in rows:
        if speaker not in speakers:
            speakers.append(speaker)
        index = speakers.index(speaker)
        if previous is not None and dialogue != previous:
            # The original notices the new dialogue only after indexing its first row.
            speakers, history = [], []
        history.append((index, utterance))
        context = "".join("<s" + str(i + 1) + "> " + text + " " for i, text in history).strip()
        strings.append(context + " </s> Now <s" + str(index + 1) + "> feels")
        previous = dialogue
    return strings


def restated_tokenize(text, tokenizer, speaker_tokens, specials):
    """transformers 4.27's `PreTrainedTokenizer.tokenize` for RoBERTa with the speaker tokens, restated."""
    pattern = "(" + "|".join(re.escape(token) for token in sorted(specials, key=len, reverse=True)) + ")"
    pieces = [piece for piece in re.split(pattern, text)]
    for i, piece in enumerate(pieces):
        if piece in speaker_tokens:  # plain-string special tokens: strip both neighbours
            if i + 1 < len(pieces):
                pieces[i + 1] = pieces[i + 1].lstrip()
            if i > 0:
                pieces[i - 1] = pieces[i - 1].rstrip()
        elif piece == tokenizer.mask_token and i > 0:  # AddedToken(lstrip=True)
            pieces[i - 1] = pieces[i - 1].rstrip()
    tokens = []
    for piece in pieces:
        if not piece:
            continue
        tokens.extend([piece] if piece in specials else bpe(tokenizer, piece))
    return tokens


@functools.lru_cache(maxsize=None)
def _bpe(tokenizer_id, piece):
    return tuple(_TOKENIZERS[tokenizer_id].tokenize(piece))


_TOKENIZERS = {}


def bpe(tokenizer, piece):
    _TOKENIZERS[id(tokenizer)] = tokenizer
    return list(_bpe(id(tokenizer), piece))


def original_tokens(strings, tokenizer, rules="restated", max_length=511):
    speaker_tokens = ["<s" + str(i + 1) + ">" for i in range(NUM_SPEAKER_TOKENS)]
    specials = set(speaker_tokens) | {"<s>", "</s>", "<pad>", "<unk>", "<mask>"}
    result = []
    for text in strings:
        if rules == "installed":
            tokens = tokenizer.tokenize(text)
        else:
            tokens = restated_tokenize(text, tokenizer, speaker_tokens, specials)
        result.append(tokens[-max_length:] + [tokenizer.mask_token])
    return result


def load_tokenizer(name, rules):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name, use_fast=rules != "installed")
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<s" + str(i + 1) + ">" for i in range(NUM_SPEAKER_TOKENS)]}
    )
    return tokenizer


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", nargs="+", help="MELD *_sent_emo.csv files, read in the order given.")
    parser.add_argument("--tokenizer", required=True, help="roberta-large (a Hub id or a local folder).")
    parser.add_argument("--rules", choices=["restated", "installed"], default="restated")
    parser.add_argument("--max-length", type=int, default=511)
    args = parser.parse_args(argv)
    tokenizer = load_tokenizer(args.tokenizer, args.rules)
    for path in args.csv:
        for tokens in original_tokens(teacher_strings(read_rows(path)), tokenizer, args.rules, args.max_length):
            sys.stdout.write(json.dumps(tokens, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
