"""Thread hygiene and roles, on snippets written for these tests: bots, templates, quotes, URLs, logs, parts."""

from __future__ import annotations

from taxonomy.batch import analyse
from taxonomy.labelers import BuiltinLabeler
from taxonomy.text import MAX_LOG_CHARS, MAX_PART_CHARS, condense_log, prepare
from taxonomy.thread import clean, is_bot, split_roles

WELCOME = ("Hello @someone, thank you for your interest in our work! Please visit our Custom Data Training tutorial "
           "and the docker quickstart to get started with custom data.")
STALE = "This issue has been automatically marked as stale because it has not had recent activity."


def test_bots_by_login_and_by_template_text() -> None:
    assert is_bot("github-actions[bot]", "anything")
    assert is_bot("stale", "ping")
    assert is_bot(None, WELCOME) and is_bot("reporter", STALE)  # authors unknown or wrong: the template decides
    assert not is_bot("alice", "I trained on my custom data and docker, the tutorial did not help.")


def test_clean_drops_quotes_urls_link_targets_images_mentions_but_keeps_code() -> None:
    text = ("> I cannot reproduce the results\n"
            "See [the training notes](https://example.org/docs/train.md) and https://example.org/x?y=1 @bob\n"
            "![screenshot](https://img.example.org/a.png)\n"
            "```\n> not a quote inside code\n```")
    out = clean(text)
    assert "cannot reproduce" not in out
    assert "the training notes" in out and "example.org" not in out and "screenshot" not in out
    assert "@bob" not in out and "> not a quote inside code" in out


def test_clean_drops_html_comments_a_template_leaves_but_not_inside_code() -> None:
    # GitHub never shows an HTML comment: a template's instructions, which the REST API's raw markdown keeps.
    text = ("<!-- Please describe the error you get and attach the traceback -->\n"
            "The anchors look off for small birds.\n<!--\nmulti-line\nhint: crash? -->Thanks.\n"
            "```\n<!-- kept inside code -->\n```\n"
            "<!-- a comment left open hides the rest, as on GitHub: error")
    out = clean(text)
    assert "error" not in out and "traceback" not in out and "crash" not in out and "hint" not in out
    assert "The anchors look off for small birds." in out and "Thanks." in out
    assert "<!-- kept inside code -->" in out


def test_roles_split_reporter_and_discussion_and_drop_bots() -> None:
    comments = [{"author": "alice", "body": "Forgot to say: I fine-tune on my own dataset."},
                {"author": "github-actions[bot]", "body": WELCOME},
                {"author": "maintainer", "body": "The anchors in your config are wrong; fixed in the yaml file."}]
    parts = split_roles("Low mAP", "mAP is lower than reported", comments, reporter="alice")
    assert parts.authors_known and parts.dropped_bot_comments == 1
    assert any("fine-tune" in t for t in parts.opening) and any("anchors" in t for t in parts.discussion)
    assert not any("tutorial" in t for t in parts.whole)


def test_unknown_authors_keep_only_the_opening_post_as_the_reporters() -> None:
    # The Denchmark archive names the author on every comment: nobody's follow-up can be trusted as theirs.
    comments = [{"author": "alice", "body": "Try a smaller batch size."}, {"author": "alice", "body": STALE},
                {"author": "alice", "body": "It works now, thanks."}]
    parts = split_roles("OOM", "CUDA out of memory", comments, reporter="alice")
    assert not parts.authors_known and parts.opening == ["CUDA out of memory"]
    assert parts.dropped_bot_comments == 1 and len(parts.discussion) == 2


def test_bot_text_fires_no_evidence() -> None:
    a = analyse("Crash", ["Training crashes."], [])
    b = analyse("Crash", ["Training crashes."], [WELCOME])  # as if the template had slipped through the role split
    parts = split_roles("Crash", "Training crashes.", [{"author": "x", "body": WELCOME}])
    c = analyse(parts.title, parts.opening, parts.discussion)
    assert {e.key for e in a.evidence} == {e.key for e in c.evidence}
    assert "dataset:custom" in {e.key for e in b.evidence} and "dataset:custom" not in {e.key for e in c.evidence}


def test_long_log_condensed_to_its_evidence() -> None:
    log = "\n".join(["Epoch 1/300 loss 0.51"] * 5000 + ["Traceback (most recent call last):", "  File \"train.py\", line 3",
                                                          "RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"])
    out = condense_log(log)
    assert "CUDA out of memory" in out and out.count("Epoch") == 0 and len(out) < 500


# A traceback pasted without a code fence, as it is often pasted: frames indented by two, source lines by four.
_BARE_TRACE = ("Traceback (most recent call last):\n  File \"train.py\", line 10, in <module>\n    main()\n"
               "  File \"train.py\", line 5, in main\n    out = model(images)\n\n"
               "  File \"/usr/lib/torch/module.py\", line 727, in _call_impl\n    result = self.forward(*input)\n"
               "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB")


def test_a_traceback_without_a_fence_is_a_log_not_prose() -> None:
    p = prepare("OOM", [f"I get this when training:\n{_BARE_TRACE}\nI use batch size 16. What should I do?"])
    assert p.prose == "I get this when training:\n\nI use batch size 16. What should I do?"
    assert p.logs == _BARE_TRACE
    assert p.evidence_logs.splitlines() == [
        "Traceback (most recent call last):", 'File "train.py", in <module>', 'File "train.py", in main',
        'File "module.py", in _call_impl', "RuntimeError: CUDA out of memory. Tried to allocate 20.00 MiB"]
    # flush-left frames and a source-less frame: each frame's source line is the next line unless it is a frame
    flush = ('Traceback (most recent call last):\nFile "a.py", line 1, in <module>\nmain()\nFile "<string>", line 1\n'
             "KeyError: 'model'\nThanks")
    p = prepare("KeyError", [flush])
    assert p.prose == "Thanks" and p.logs.endswith("KeyError: 'model'")
    # a thread that is nothing but the pasted log is read from its title and the log, not abstained on
    preds = BuiltinLabeler().label_many([analyse("CUDA out of memory in training", [_BARE_TRACE])])[0]
    assert all(x.reason not in ("non_english", "no_prose") for x in preds.values())


def test_past_the_cap_a_part_keeps_its_start_and_its_end() -> None:
    # a 1.3 MB log in a fence, with many distinct warnings, that ends in the one exception that says what failed
    warnings = "\n".join(f"UserWarning: layer{i} weight version mismatch, using default init" for i in range(20_000))
    body = f"Full log:\n```\n{warnings}\n{_BARE_TRACE}\n```\nIt dies at the end."
    assert len(body) > 1_000_000
    p = prepare("Training dies", [body])
    assert p.truncated and p.prose == "Full log:\n\nIt dies at the end."
    assert "layer0 weight" in p.evidence_logs and "RuntimeError: CUDA out of memory" in p.evidence_logs
    assert len(p.evidence_logs) <= MAX_LOG_CHARS and "layer19999 weight" in p.evidence_logs
    # the cut falls inside the fence: each side closes its piece, so no log line leaks into the prose
    assert "Warning" not in p.prose


def test_past_the_cap_each_post_keeps_its_start_and_its_end() -> None:
    # the opening post's log ends in its exception; the reporter's follow-up pastes another long log
    noise = "\n".join(f"UserWarning: layer{i} weight version mismatch, using default init" for i in range(1_750))
    opening = f"Training dies:\n```\n{noise}\nValueError: anchors do not match the head\n```"
    follow_up = f"Same after the update:\n```\n{noise}\nRuntimeError: CUDA out of memory\n```"
    assert len(opening) + len(follow_up) > MAX_PART_CHARS > len(opening)
    short = "Tried batch size 1 too."
    p = prepare("Training dies", [opening, short, follow_up])
    # before, the joined part was cut: the follow-up's end was kept and the opening post's own exception lost
    assert p.truncated and "ValueError: anchors do not match the head" in p.logs and "RuntimeError: CUDA out of memory" in p.logs
    assert "ValueError: anchors" in p.evidence_logs and "RuntimeError: CUDA" in p.evidence_logs
    # a short post is kept whole; each long post's start too; no log line leaks into the prose
    assert p.prose == "Training dies:\n\nTried batch size 1 too.\n\nSame after the update:"
    assert "layer0 weight" in p.logs
    fits = prepare("Training dies", [opening, short])
    assert not fits.truncated and "layer1749 weight" in fits.logs


def test_past_the_cap_many_long_posts_keep_whole_posts_from_both_ends() -> None:
    # 400 comments of about 700 characters: a share each would be a fragment, so whole comments are kept
    from taxonomy.text import _fit_posts

    posts = [f"Comment {i}: " + "the loss stays flat after the warmup epochs, " * 15 + f"end of comment {i}." for i in range(400)]
    raw, cut = _fit_posts(posts)
    assert cut and len(raw) <= MAX_PART_CHARS and raw.startswith(posts[0]) and raw.endswith(posts[-1])
    assert f"\n\n{posts[5]}\n\n" in raw and f"\n\n{posts[398]}\n\n" in raw
    # a few long posts among short ones: each keeps its own start and end, the short ones whole
    long_post = "Log:\n" + "step 1 loss 0.5\n" * 9_000 + "ValueError: shapes differ"
    raw, cut = _fit_posts([long_post, "Thanks.", long_post.replace("ValueError", "KeyError")])
    assert cut and raw.count("ValueError: shapes differ") == 1 and raw.count("KeyError: shapes differ") == 1
    assert "\n\nThanks.\n\n" in raw and len(raw) <= MAX_PART_CHARS + 4


def test_a_log_past_its_room_keeps_exception_lines_first_then_both_ends() -> None:
    lines = [f"step {i:04d} cuda sync" for i in range(1000)]
    lines[500] = "RuntimeError: CUDA error: device-side assert triggered"
    lines[700] = "(pid=12) ValueError: not enough values to unpack"
    log = "\n".join(lines)
    assert condense_log(log, len(log)) == log  # fits: every distinct line, in order
    out = condense_log(log, 1000).splitlines()
    assert len("\n".join(out)) <= 1000 and out == sorted(out, key=lines.index)
    assert lines[500] in out and lines[700] in out  # from the middle, ahead of any other line
    assert out[0] == "step 0000 cuda sync" and out[-1] == "step 0999 cuda sync"
    assert len(out) >= 40 and {"step 0001 cuda sync", "step 0998 cuda sync"} <= set(out)
    assert "step 0300 cuda sync" not in out
    # a single line longer than the room is cut, never allowed to crowd out the rest
    assert condense_log("x" * 5000 + " cuda\n" + "KeyError: 'model'", 1000).endswith("KeyError: 'model'")


def test_line_patterns_never_run_over_blank_lines() -> None:
    # A match that opens on a blank line and runs over the following ones is what made a long run of
    # blank lines cost cubic time; a line pattern's match holds one line.
    from taxonomy.text import _LOG_LINE, _QUOTE_LINE

    text = "Crash\n\n\n  \n\t\nTraceback (most recent call last):\n\n\n> quoted\n\n\n   at org.Foo.bar(Foo.java:3)\nhello\n"
    for pattern, wanted in ((_LOG_LINE, ["Traceback (most recent call last):", "   at org.Foo.bar(Foo.java:3)"]),
                            (_QUOTE_LINE, ["> quoted"])):
        assert [m.group(0) for m in pattern.finditer(text)] == wanted
    p = prepare("Crash", ["It fails.\n" + "\n" * 100_000 + "Then nothing else happens here."])
    assert p.prose == "It fails.\n\nThen nothing else happens here." and p.english


def test_each_dimension_reads_its_part() -> None:
    # The maintainer's diagnosis names the root cause; the reporter's post alone decides the impact.
    a = analyse("Training is very slow", ["Training is very slow on two GPUs."],
                ["Diagnosis: your learning rate and batch size hyperparameters are far off; fixed in the yaml file."])
    b = analyse("Training is very slow", ["Training is very slow on two GPUs."],
                [])
    labeler = BuiltinLabeler(threshold=0.0)
    pa, pb = labeler.label_many([a, b])
    assert pa["impact"].candidate == pb["impact"].candidate == "lower_speed"
    # without the diagnosis only the joint table's weak link (slow -> timing code error -> cause) is left: no spans
    assert pa["root_cause"].candidate == "hyperparameters" and not pb["root_cause"].evidence
    assert pa["root_cause"].probability > pb["root_cause"].probability
    assert {s["section"].split()[0] for s in pa["root_cause"].evidence} == {"discussion"}
    # a claim made only in the discussion does not decide the reporter's impact
    c = analyse("Question about results", ["I ran the model."], ["Training is very slow for me too."])
    assert labeler.label_many([c])[0]["impact"].candidate != "lower_speed"


def test_english_check_survives_urls_and_code() -> None:
    body = ("Crash in train.py, see https://example.org/repo/blob/master/train.py#L10 and "
            "https://example.org/issues/3\n```\nimport torch\nx = torch.zeros(3)\nprint(x.cuda())\n```")
    parts = split_roles("RuntimeError with the ONNX export", body, [])
    a = analyse(parts.title, parts.opening, parts.discussion)
    assert a.prepared is not None and a.prepared.english


def test_bot_templates_match_in_any_case_as_re_ignorecase_would() -> None:
    from taxonomy.thread import BOT_HEAD_CHARS, BOT_TEMPLATES

    assert all(p == p.lower() for p in BOT_TEMPLATES)  # searched in the case-folded comment
    stale = "This issue has been automatically marked as stale because it has not had recent activity."
    assert is_bot(None, "Hi!\n\n" + stale)  # a template near the comment's start
    assert not is_bot(None, "I read the docs. " * (BOT_HEAD_CHARS // 17 + 1) + stale)  # deep inside a human comment
    assert is_bot(None, "THIS ISSUE HAS BEEN AUTOMATICALLY MARKED AS STALE because nobody answered.")
    assert is_bot(None, "This issue has been automatically marked as \u017ftale.")  # long s: re.I equates it with s
    assert is_bot(None, "Th\u0130s issue was automatically closed.")  # dotted capital I
    assert not is_bot(None, "My script automatically marked the stale cache entries; closing them by hand fixed it.")


def test_every_bot_template_is_found_behind_its_hint_words() -> None:
    """One comment per template, written for this test: each template matches one, and is_bot (which searches
    only a head holding one of BOT_TEMPLATE_HINTS) finds every one."""
    import re

    from taxonomy.thread import BOT_TEMPLATES

    samples = [
        "This issue has been automatically marked as stale.", "This issue was automatically closed.",
        "It will be closed if no further activity occurs.", "Thank you for your contributions. This issue is stale.",
        "Hello @someone, thank you for your interest in our detector!", "👋 Hello @someone",
        "Thanks for your interest in our work.",
        "If this is a 🐛 Bug Report, please provide screenshots and **minimum viable code to reproduce your issue**",
        "Thanks for submitting this issue! We will look at it soon.", "Please sign our Contributor License Agreement.",
        "This pull request has been automatically locked.", "# Codecov Report", "Automated message: the build passed.",
        "I'm a bot, and this is a reminder.", "Beep boop.", "Are you satisfied with the resolution of your issue?",
        "Closing this issue as stale automatically.",
    ]
    assert all(any(re.search(p, s.lower()) for s in samples) for p in BOT_TEMPLATES)
    assert all(is_bot(None, s) for s in samples)


def test_condensed_log_equals_the_line_by_line_definition() -> None:
    import re

    from taxonomy.text import _SIGNAL_LINE, condense_log

    log = ("epoch 1/10 loss nan\nplain line\nRuntimeError: CUDA error: device-side assert\n\u0130nfo: version 1.7 "
           "mismatch\nKilled\n" + "x" * 3000 + " Segmentation fault\nnaninf\ninf\n"
           '  File "/opt/lib/torch/nn/module.py", line 727, in _call_impl\n  file "C:\\w\\train.py", line 3, in main\n'
           'worker died: File "/a/b.py", line 9, in run\n')
    expected, seen = [], set()
    for line in _SIGNAL_LINE.findall(log):
        frame = re.match(r'\s*File "(?:.*[/\\])?([^"/\\]+)", line [0-9]+, in (\S+)', line)
        if frame:
            line = f'File "{frame[1]}", in {frame[2]}'
        else:
            line = re.sub(r"\d+", "0", line.strip()) if re.search(r"\d+/\d+|\d+%|Epoch \d+", line, re.I) else line.strip()
        if line not in seen:
            seen.add(line)
            expected.append(line)
    assert len("\n".join(expected)) < 4000  # below the cap: every distinct line, in order
    assert condense_log(log) == "\n".join(expected)
    assert condense_log(log.replace("\u0130", "I")) == "\n".join(expected).replace("\u0130", "I")


def test_fence_split_is_the_lazy_pattern_split() -> None:
    import re

    from taxonomy.thread import _fence_split

    for text in ["no fence", "a ```code``` b", "````x``` y ```open", "```", "``````", "x```\n> q\n```\n> real quote", ""]:
        assert _fence_split(text) == re.split(r"(```.*?(?:```|\Z))", text, flags=re.S), text


def test_link_pattern_is_the_one_alternation_per_character() -> None:
    import re

    from taxonomy.thread import _LINK

    definition = re.compile(r"\[([^\]\n]*)\]\((?:[^()\s]|\([^()\s]*\))*(?:\s+\"[^\"]*\")?\)")
    for text in ["[a](http://x.org/p)", "[](x)", "[t](a(b)c(d)e) [u](f)", "[t](a(b(c))d)", "[t](a b)", "[t](a(b c)d)",
                 '[t](url "title") [t](url  "ti)tle")', '[t](url "open', "[t](a(b)", "[t](", "[x\n](y)", "[t]()(z)",
                 "[[t]](u)", "text ](no) [link"]:
        assert _LINK.sub(lambda m: m.group(1), text) == definition.sub(lambda m: m.group(1), text), text
        assert [m.span() for m in _LINK.finditer(text)] == [m.span() for m in definition.finditer(text)], text


def test_url_drop_is_the_one_pattern_substitution() -> None:
    import re

    from taxonomy.thread import _drop_urls

    definition = re.compile(r"(?:h(?<!\wh)ttps?://|f(?<!\wf)tp://|w(?<!\ww)ww\.)[^\s<>)\]]+", re.I)
    for text in ["see https://x.org/a and www.y.com.", "http://www.x.org www.z ftp://f", "xhttp://no _www.no 9ftp://no",
                 "HTTP://X.ORG Www.Y.com FTP://F", "www.http://x ftp://www.y http://ftp://z",
                 "(http://a)b <www.c>d [ftp://e]", "http:// www. https://", "\u0130 http://x.org \u017f",
                 "\u212a www.k.org", "plain text", "https://a\nhttps://b"]:
        assert _drop_urls(text) == definition.sub("", text), text


def test_quote_guard_finds_exactly_the_texts_with_a_quote() -> None:
    from taxonomy.thread import _QUOTE, _QUOTE_FIRST, _QUOTE_LATER

    for text in ["> a", "  > a", "\t>a", "a\n> b", "a\n \t> b", "a > b", "a\n b > c", "->", "", "\n>", "a\n\n>", "x\r> y"]:
        guard = _QUOTE_FIRST.match(text) is not None or _QUOTE_LATER.search(text) is not None
        assert guard == (_QUOTE.search(text) is not None), text
