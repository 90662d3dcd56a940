/* Text processing: tokenizer, stopwords, stemming, sentences, chunks, filler, entities and the
 * token estimator. */
#include <criterion/criterion.h>
#include <string.h>

#include "engram/arena.h"
#include "engram/text.h"

static eg_arena_t arena;

static void setup(void)
{
    eg_arena_init(&arena);
}

static void teardown(void)
{
    eg_arena_destroy(&arena);
}

TestSuite(text, .init = setup, .fini = teardown);

/* Tokenize s and join the terms with single spaces. */
static const char *toks(const char *s, unsigned flags)
{
    eg_text_token_t *v;
    size_t n = eg_text_tokenize(&arena, s, strlen(s), flags, &v);
    char *out = eg_arena_alloc(&arena, strlen(s) * 2 + 16);

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " ");
        strcat(out, v[i].term);
    }
    return out;
}

/* Sentences of s joined with " | ". */
static const char *sents(const char *s)
{
    eg_text_span_t *v;
    size_t n = eg_text_sentences(&arena, s, strlen(s), &v);
    char *out = eg_arena_alloc(&arena, strlen(s) * 2 + 16);

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(out, " | ");
        strncat(out, s + v[i].off, v[i].len);
    }
    return out;
}

/* Entities of s joined with " | ". */
static const char *ents(const char *s)
{
    eg_text_entity_t *v;
    size_t n = eg_text_entities(&arena, s, strlen(s), &v);
    char *out = eg_arena_alloc(&arena, strlen(s) * 2 + 16);

    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(memcmp(s + v[i].off, v[i].text, v[i].len), 0);
        cr_assert_eq(strlen(v[i].text), v[i].len);
        if (i)
            strcat(out, " | ");
        strcat(out, v[i].text);
    }
    return out;
}

/* ---- Tokenizer ---- */

Test(text, tokenize_basic_and_offsets)
{
    const char *s = "Hello, World! 42 apples";
    eg_text_token_t *v;
    size_t n = eg_text_tokenize(&arena, s, strlen(s), 0, &v);

    cr_assert_eq(n, 4);
    cr_assert_str_eq(v[0].term, "hello");
    cr_assert_eq(v[0].off, 0);
    cr_assert_eq(v[0].src_len, 5);
    cr_assert_str_eq(v[1].term, "world");
    cr_assert_eq(v[1].off, 7);
    cr_assert_str_eq(v[2].term, "42");
    cr_assert_eq(v[2].off, 14);
    cr_assert_str_eq(v[3].term, "apples");
    cr_assert_eq(v[3].off, 17);
    cr_assert_eq(v[3].src_len, 6);
}

Test(text, tokenize_empty_and_whitespace)
{
    eg_text_token_t *v = (void *)1;

    cr_assert_eq(eg_text_tokenize(&arena, "", 0, 0, &v), 0);
    cr_assert_null(v);
    cr_assert_eq(eg_text_tokenize(&arena, " \t\n  ", 5, 0, &v), 0);
    cr_assert_eq(eg_text_tokenize(&arena, NULL, 0, 0, &v), 0);
    cr_assert_eq(eg_text_tokenize(&arena, "!!! ... ---", 11, 0, &v), 0);
}

Test(text, tokenize_accents_fold)
{
    cr_assert_str_eq(toks("José Álvarez", 0), "jose alvarez");
    cr_assert_str_eq(toks("Straße ŒUVRE Łódź Ægir", 0), "strasse oeuvre lodz aegir");
    cr_assert_str_eq(toks("ÇA NAÏVE façade", 0), "ca naive facade");
    /* A decomposed accent (e + U+0301) folds like the precomposed letter. */
    cr_assert_str_eq(toks("Jose\xcc\x81", 0), "jose");
    cr_assert_str_eq(toks("ΑΘΗΝΑ Москва", 0), "αθηνα москва");
}

Test(text, tokenize_apostrophes)
{
    cr_assert_str_eq(toks("don't I'm we’re", 0), "dont im were");
    cr_assert_str_eq(toks("Alice's car, the boss’s desk", 0), "alice car the boss desk");
    cr_assert_str_eq(toks("'quoted' rock'n'roll", 0), "quoted rocknroll");
    cr_assert_str_eq(toks("the 90's", 0), "the 90");
}

Test(text, tokenize_emoji_and_symbols)
{
    cr_assert_str_eq(toks("I ❤️ pizza 🍕🍕 and café ☕", 0), "i pizza and cafe");
    cr_assert_str_eq(toks("👍", 0), "");
    cr_assert_str_eq(toks("a\xff\xfe b", 0), "a b"); /* invalid bytes separate */
    cr_assert_str_eq(toks("x\xe2\x82", 0), "x");     /* truncated sequence */
}

Test(text, tokenize_cjk_per_character)
{
    cr_assert_str_eq(toks("東京タワー tokyo", 0), "東 京 タ ワ ー tokyo");
}

Test(text, tokenize_stopwords_and_stem)
{
    cr_assert_str_eq(toks("The cats were running to the parties", EG_TEXT_STOPWORDS),
                     "cats running parties");
    cr_assert_str_eq(toks("The cats were running to the parties", EG_TEXT_STOPWORDS | EG_TEXT_STEM),
                     "cat run party");
    cr_assert_str_eq(toks("I don't know", EG_TEXT_STOPWORDS), "know");
    cr_assert_str_eq(toks("the of and", EG_TEXT_STOPWORDS), "");
}

Test(text, tokenize_long_word_truncated)
{
    char buf[300];
    eg_text_token_t *v;

    memset(buf, 'a', 200);
    strcpy(buf + 200, " é");
    cr_assert_eq(eg_text_tokenize(&arena, buf, strlen(buf), 0, &v), 2);
    cr_assert_eq(v[0].len, EG_TEXT_TERM_MAX);
    cr_assert_eq(v[0].src_len, 200);
    cr_assert_str_eq(v[1].term, "e");
    /* A cut never lands inside a multi-byte character. */
    strcpy(buf, "a");
    for (int i = 0; i < 40; i++)
        strcat(buf, "é");
    cr_assert_eq(eg_text_tokenize(&arena, buf, strlen(buf), 0, &v), 1);
    cr_assert_eq(v[0].len, 41);
}

Test(text, tokenizer_streaming_matches_array)
{
    eg_text_tokenizer_t t;
    eg_text_token_t tok;
    const char *s = "one two three";
    size_t n = 0;

    eg_text_tokenizer_init(&t, s, strlen(s), 0);
    while (eg_text_tokenizer_next(&t, &tok))
        n++;
    cr_assert_eq(n, 3);
    cr_assert_not(eg_text_tokenizer_next(&t, &tok));
}

Test(text, terms_for_bm25)
{
    const char **terms;
    size_t n = eg_text_terms(&arena, "Alice adopted two dogs", 22, EG_TEXT_STOPWORDS | EG_TEXT_STEM,
                             &terms);

    cr_assert_eq(n, 4);
    cr_assert_str_eq(terms[0], "alic"); /* stems are not words */
    cr_assert_str_eq(terms[1], "adopt");
    cr_assert_str_eq(terms[2], "two");
    cr_assert_str_eq(terms[3], "dog");
}

Test(text, stopwords)
{
    cr_assert(eg_text_is_stopword("the", 3));
    cr_assert(eg_text_is_stopword("dont", 4));
    cr_assert(eg_text_is_stopword("a", 1));
    cr_assert(eg_text_is_stopword("yourselves", 10));
    cr_assert(eg_text_is_stopword("youve", 5));
    cr_assert_not(eg_text_is_stopword("theory", 6));
    cr_assert_not(eg_text_is_stopword("alice", 5));
    cr_assert_not(eg_text_is_stopword("", 0));
    cr_assert(eg_text_is_stopword("thereafter", 5)); /* only the first n bytes count */
}

static const char *stem(const char *w)
{
    char *b = eg_arena_strdup(&arena, w);
    eg_text_stem(b, strlen(b));
    return b;
}

Test(text, stemmer)
{
    cr_assert_str_eq(stem("cats"), "cat");
    cr_assert_str_eq(stem("boxes"), "box");
    cr_assert_str_eq(stem("churches"), "church");
    cr_assert_str_eq(stem("parties"), "party");
    cr_assert_str_eq(stem("ties"), "tie");
    cr_assert_str_eq(stem("classes"), "class");
    cr_assert_str_eq(stem("running"), "run");
    cr_assert_str_eq(stem("walked"), "walk");
    cr_assert_str_eq(stem("stopped"), "stop");
    cr_assert_str_eq(stem("falling"), "fall");
    cr_assert_str_eq(stem("missed"), "miss");
    cr_assert_str_eq(stem("glass"), "glass");
    cr_assert_str_eq(stem("status"), "status");
    cr_assert_str_eq(stem("analysis"), "analysis");
    /* Verb forms meet. */
    cr_assert_str_eq(stem("make"), "mak");
    cr_assert_str_eq(stem("makes"), "mak");
    cr_assert_str_eq(stem("making"), "mak");
    /* Short words, digits, and words without a vowel before the suffix are left alone. */
    cr_assert_str_eq(stem("is"), "is");
    cr_assert_str_eq(stem("bed"), "bed");
    cr_assert_str_eq(stem("need"), "need");
    cr_assert_str_eq(stem("string"), "string");
    cr_assert_str_eq(stem("1990s"), "1990s");
    cr_assert_str_eq(stem("thing"), "thing");
    cr_assert_str_eq(stem("москвы"), "москвы");
}

/* ---- Sentences ---- */

Test(text, sentences_basic)
{
    cr_assert_str_eq(sents("Hello there. How are you? I'm fine!"),
                     "Hello there. | How are you? | I'm fine!");
    cr_assert_str_eq(sents("  padded.   "), "padded.");
    cr_assert_str_eq(sents(""), "");
    cr_assert_str_eq(sents(" \n\t \n"), "");
}

Test(text, sentences_offsets)
{
    const char *s = "  One. Two.";
    eg_text_span_t *v;

    cr_assert_eq(eg_text_sentences(&arena, s, strlen(s), &v), 2);
    cr_assert_eq(v[0].off, 2);
    cr_assert_eq(v[0].len, 4);
    cr_assert_eq(v[1].off, 7);
    cr_assert_eq(v[1].len, 4);
}

Test(text, sentences_abbreviations)
{
    cr_assert_str_eq(sents("Mr. Smith met Dr. Jones. They talked."),
                     "Mr. Smith met Dr. Jones. | They talked.");
    cr_assert_str_eq(sents("Bring fruit, e.g. Apples. Then go."),
                     "Bring fruit, e.g. Apples. | Then go.");
    cr_assert_str_eq(sents("He moved to the U.S. In 2019 he left."),
                     "He moved to the U.S. In 2019 he left.");
    cr_assert_str_eq(sents("J. R. R. Tolkien wrote it. Fine."),
                     "J. R. R. Tolkien wrote it. | Fine.");
    cr_assert_str_eq(sents("Pi is 3.14 roughly. Yes."), "Pi is 3.14 roughly. | Yes.");
    cr_assert_str_eq(sents("See i.e. this one."), "See i.e. this one.");
    cr_assert_str_eq(sents("It was Jan. 5 when we met."), "It was Jan. 5 when we met.");
}

Test(text, sentences_lowercase_continuation_and_quotes)
{
    cr_assert_str_eq(sents("Wait... what happened? nothing."), "Wait... what happened? nothing.");
    cr_assert_str_eq(sents("Really?! Yes."), "Really?! | Yes.");
    cr_assert_str_eq(sents("He said \"stop.\" Then he left."), "He said \"stop.\" | Then he left.");
    cr_assert_str_eq(sents("Done. \"Next,\" she said."), "Done. | \"Next,\" she said.");
    cr_assert_str_eq(sents("Version 2. 3 items remain."), "Version 2. | 3 items remain.");
    cr_assert_str_eq(sents("Yahoo!Mail is old."), "Yahoo!Mail is old.");
}

Test(text, sentences_newlines_are_hard_breaks)
{
    cr_assert_str_eq(sents("first line\nsecond line\r\n\nthird"),
                     "first line | second line | third");
}

Test(text, sentences_unicode)
{
    cr_assert_str_eq(sents("Olá. É verdade. Привет. Да."), "Olá. | É verdade. | Привет. | Да.");
    cr_assert_str_eq(sents("今日は晴れ。明日は雨。"), "今日は晴れ。 | 明日は雨。");
    cr_assert_str_eq(sents("Wow 🎉. Great."), "Wow 🎉. | Great.");
}

/* ---- Chunks ---- */

static size_t chunks(const char *s, size_t max, eg_text_span_t **v)
{
    return eg_text_chunks(&arena, s, strlen(s), max, v);
}

Test(text, chunks_pack_sentences)
{
    eg_text_span_t *v;
    const char *s = "Aaaa. Bbbb. Cccc.";

    /* "Aaaa. Bbbb." is exactly 11 code points: it fits a limit of 11. */
    cr_assert_eq(chunks(s, 11, &v), 2);
    cr_assert_eq(v[0].off, 0);
    cr_assert_eq(v[0].len, 11);
    cr_assert_eq(v[1].off, 12);
    cr_assert_eq(v[1].len, 5);
    /* One less and every sentence is alone. */
    cr_assert_eq(chunks(s, 10, &v), 3);
    /* Everything fits in the default. */
    cr_assert_eq(chunks(s, 0, &v), 1);
    cr_assert_eq(v[0].len, strlen(s));
    cr_assert_eq(chunks("", 0, &v), 0);
    cr_assert_eq(chunks("   \n ", 0, &v), 0);
}

Test(text, chunks_count_code_points)
{
    eg_text_span_t *v;
    const char *s = "ééééé. ééééé."; /* 13 code points, 23 bytes */

    cr_assert_eq(eg_text_codepoints(s, strlen(s)), 13);
    cr_assert_eq(chunks(s, 13, &v), 1);
    cr_assert_eq(chunks(s, 12, &v), 2);
    cr_assert_eq(v[1].off, 12); /* bytes */
}

Test(text, chunks_split_long_sentence_at_words)
{
    eg_text_span_t *v;
    const char *s = "alpha beta gamma delta epsilon";
    size_t n = chunks(s, 12, &v);

    cr_assert_eq(n, 3);
    cr_assert_eq(v[0].len, 10); /* "alpha beta" */
    cr_assert_eq(memcmp(s + v[1].off, "gamma delta", 11), 0);
    cr_assert_eq(v[1].len, 11);
    cr_assert_eq(memcmp(s + v[2].off, "epsilon", 7), 0);
}

Test(text, chunks_hard_split_never_breaks_utf8)
{
    eg_text_span_t *v;
    char s[200] = "";
    size_t n, total = 0;

    for (int i = 0; i < 25; i++)
        strcat(s, "€"); /* 3 bytes each, no spaces */
    n = chunks(s, 10, &v);
    cr_assert_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(v[i].off % 3, 0);
        cr_assert_eq(v[i].len % 3, 0);
        cr_assert_leq(eg_text_codepoints(s + v[i].off, v[i].len), 10);
        total += v[i].len;
    }
    cr_assert_eq(total, strlen(s));
}

Test(text, chunks_invariants_on_prose)
{
    eg_text_span_t *v;
    char *s = eg_arena_alloc(&arena, 20000);
    size_t n, prev_end = 0;

    s[0] = '\0';
    for (int i = 0; i < 200; i++)
        strcat(s, i % 7 == 0 ? "A much longer sentence about Zoë and the café on the corner. "
                             : "Short one. ");
    n = chunks(s, 100, &v);
    cr_assert_gt(n, 10);
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(eg_text_codepoints(s + v[i].off, v[i].len), 100);
        cr_assert_geq(v[i].off, prev_end);
        cr_assert_neq(s[v[i].off], ' ');
        prev_end = v[i].off + v[i].len;
    }
}

/* ---- Filler ---- */

Test(text, filler_true)
{
    static const char *const yes[] = {
        "hi",
        "Hello there!",
        "thanks!",
        "ok",
        "Sounds good.",
        "bye",
        "How are you?",
        "Thank you so much!",
        "Good morning",
        "See you later!",
        "You're welcome",
        "no problem",
        "lol",
        "Thanks, Bob!",
        "Hey Anna",
        "",
        "   ",
        "👍",
        "Great, thanks!",
        "okay cool",
    };
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        cr_assert(eg_text_is_filler(yes[i], strlen(yes[i])), "%s", yes[i]);
}

Test(text, filler_false)
{
    static const char *const no[] = {
        "I moved to Berlin last year.",
        "My sister Anna is a doctor.",
        "The meeting is at 3pm.",
        "Thanks for the book about Rome!",
        "Alice Bob",
        "I love hiking in the Alps",
        "ok so the deadline is friday",
        "hello hello hello hello hello hello hello hello hello",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        cr_assert_not(eg_text_is_filler(no[i], strlen(no[i])), "%s", no[i]);
}

/* ---- Entities ---- */

Test(text, entities_capitalised_runs)
{
    cr_assert_str_eq(ents("Yesterday Alice met Bob Smith at Bank of America."),
                     "Alice | Bob Smith | Bank of America");
    cr_assert_str_eq(ents("I work at The New York Times with Charles de Gaulle."),
                     "The New York Times | Charles de Gaulle");
    cr_assert_str_eq(ents("The Bank of America sued me."), "Bank of America");
    cr_assert_str_eq(ents("We saw Johnson & Johnson and AT&T."), "Johnson & Johnson | AT&T");
}

Test(text, entities_accents_and_possessives)
{
    cr_assert_str_eq(ents("I had lunch with José Álvarez. José Álvarez's dog is cute."),
                     "José Álvarez");
    cr_assert_str_eq(ents("We visited Zürich and Łódź."), "Zürich | Łódź");
}

Test(text, entities_titles_and_initials)
{
    cr_assert_str_eq(ents("I saw Dr. Smith today."), "Dr. Smith");
    cr_assert_str_eq(ents("She loves J. R. R. Tolkien."), "J. R. R. Tolkien");
}

Test(text, entities_skip_common_sentence_starts_and_calendar)
{
    cr_assert_str_eq(ents("The weather is nice. This is fine. I agree."), "");
    cr_assert_str_eq(ents("We met on Monday in May."), "");
    cr_assert_str_eq(ents("Monday was fun."), "");
    cr_assert_str_eq(ents("We watched the May Day Parade."), "May Day Parade");
    cr_assert_str_eq(ents("Maybe Google will call."), "Google");
}

Test(text, entities_quoted)
{
    cr_assert_str_eq(ents("She read \"War and Peace\" twice."), "War and Peace");
    cr_assert_str_eq(ents("He loves “The Godfather” and 'Jaws' too."), "The Godfather | Jaws");
    cr_assert_str_eq(ents("It's Bob's \"thing\" isn't it"), "Bob");
    cr_assert_str_eq(ents("He said \"I will come tomorrow!\""), "");
}

Test(text, entities_unique_case_insensitive_with_first_offset)
{
    const char *s = "Alice likes Bob. Then ALICE left. Alice returned.";
    eg_text_entity_t *v;
    size_t n = eg_text_entities(&arena, s, strlen(s), &v);

    cr_assert_eq(n, 2);
    cr_assert_str_eq(v[0].text, "Alice");
    cr_assert_eq(v[0].off, 0);
    cr_assert_str_eq(v[1].text, "Bob");
    cr_assert_eq(v[1].off, 12);
}

Test(text, entities_empty)
{
    eg_text_entity_t *v = (void *)1;

    cr_assert_eq(eg_text_entities(&arena, "", 0, &v), 0);
    cr_assert_null(v);
    cr_assert_eq(eg_text_entities(&arena, "   🎉  ", 10, &v), 0);
    cr_assert_eq(eg_text_entities(&arena, "all lowercase words", 19, &v), 0);
}

/* ---- Token estimate ---- */

static size_t est(const char *s)
{
    return eg_text_estimate_tokens(s, strlen(s));
}

Test(text, estimate_calibration)
{
    cr_assert_eq(est("hello world"), 2);
    cr_assert_eq(est("The quick brown fox jumps over the lazy dog."), 10);
    cr_assert_eq(est(""), 0);
    cr_assert_eq(est("   "), 0);
    cr_assert_eq(est("don't"), 2);   /* "don" "'t" */
    cr_assert_eq(est("1234567"), 3); /* digits in groups of three */
    cr_assert_eq(est("a\n\nb"), 3);  /* one token for the newline run */
    cr_assert_eq(est("internationalization"), 3);
    cr_assert_eq(est("..."), 2);
    cr_assert_eq(est("🎉"), 2);
    cr_assert_eq(est("東京"), 2);
}

Test(text, estimate_scales_with_prose)
{
    char buf[4600] = "";

    for (int i = 0; i < 100; i++)
        strcat(buf, "The quick brown fox jumps over the lazy dog. ");
    cr_assert_eq(est(buf), 1000);
}
