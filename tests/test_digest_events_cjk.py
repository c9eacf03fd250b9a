"""Reports of one event in Japanese and Chinese are one story, as in English (digest.events):
text written without spaces is compared as character pairs. Stores are real SQLite files
written through db.Store; the texts are written for these tests, each pair of one event in
two sources' own words."""

from __future__ import annotations

from digeststore import build, story
from digest import events
from digest.select import clean_text, load_week
from digest.weeks import parse_week

W47 = "2026-W47"
JP = dict(areas=["public_research"], countries=["JP"], regions=["east_asia"])
CN = dict(areas=["public_research"], countries=["CN"], regions=["east_asia"])

# One MEXT announcement: the ministry's release and a newspaper's report of it, a day later.
MEXT_QUANTUM = [
    story("https://x.example/quantum-hubs", "2026-11-17T01:00:00Z", source="jp-mext",
          title="文部科学省、量子技術の研究開発拠点として5大学を採択",
          summary="文部科学省は、量子コンピューターや量子センサーの研究開発を担う拠点として、"
                  "東北大学、東京大学、大阪大学など5大学の計画を採択したと発表した。"
                  "1拠点あたり年間最大5億円を最長10年間支援する。", language="ja", **JP),
    story("https://news-a.example/quantum-hubs", "2026-11-18T03:00:00Z", source="news-a",
          title="量子研究の5拠点決まる　東北大・東大・阪大など　文科省が年5億円支援",
          summary="文科省は量子技術の研究開発拠点に東北大、東大、阪大など5大学を選んだ。"
                  "量子コンピューターやセンサーの実用化をめざし、各拠点に年最大5億円を最長10年間配る。",
          language="ja", **JP),
]
# Two other Japanese stories of the same days: same country and area, different sources, some
# of the same words (大学, 研究, 公募, 支援), different news.
JAPAN_OTHER = [
    story("https://news-b.example/jsps-abroad", "2026-11-17T05:00:00Z", source="news-b",
          title="日本学術振興会、若手研究者の海外派遣事業の公募を開始",
          summary="日本学術振興会は、博士課程の学生や若手研究者を海外の大学や研究機関に"
                  "最長2年間派遣する事業の2027年度の公募を始めた。渡航費と滞在費を支援する。",
          language="ja", **JP),
    story("https://news-a.example/security-guidelines", "2026-11-18T05:00:00Z", source="news-a",
          title="政府、大学の研究セキュリティー指針を決定　外国資金の開示を義務化",
          summary="政府は、大学や研究機関が外国から受け入れる研究資金や研究者の兼業を開示させる"
                  "研究セキュリティーの指針を決めた。競争的研究費の公募では開示を応募の要件とする。",
          language="ja", **JP),
]
# One announcement of China's Ministry of Science and Technology, in two agencies' words.
MOST_GUIDE = [
    story("https://news-a.example/most-guide", "2026-11-16T08:00:00Z", source="news-a",
          title="科技部发布2027年度国家重点研发计划项目申报指南",
          summary="科技部近日发布国家重点研发计划2027年度首批重点专项项目申报指南，涉及人工智能、"
                  "量子信息和合成生物学等领域，部分专项将设立青年科学家项目。", language="zh", **CN),
    story("https://news-b.example/most-guide", "2026-11-17T02:00:00Z", source="news-b",
          title="国家重点研发计划2027年度首批申报指南公布 人工智能和量子信息领域在列",
          summary="科学技术部公布国家重点研发计划2027年度首批重点专项申报指南，人工智能、量子信息、"
                  "合成生物学等专项启动申报，并设立青年科学家项目。", language="zh", **CN),
]
CHINA_OTHER = [
    story("https://news-b.example/nsfc-youth", "2026-11-18T02:00:00Z", source="news-b",
          title="国家自然科学基金委扩大青年学生基础研究项目资助范围",
          summary="国家自然科学基金委员会宣布，2027年起将青年学生基础研究项目的试点高校扩大到"
                  "100所，资助本科生和博士研究生开展自主选题研究。", language="zh", **CN),
]


def title(s: dict) -> str:
    return clean_text(s["title"])  # as shown: the ideographic space is a space


def stories_of(store):
    return load_week(store, parse_week(W47, "Asia/Tokyo")).stories


def test_two_japanese_reports_of_one_announcement_are_one_story_and_other_news_is_not(tmp_path):
    store = build(tmp_path / "s.db", MEXT_QUANTUM + JAPAN_OTHER)
    by_title = {s.title: s for s in stories_of(store)}
    assert sorted(by_title) == sorted(title(s) for s in [MEXT_QUANTUM[0], *JAPAN_OTHER])
    mext = by_title[title(MEXT_QUANTUM[0])]  # the ministry's own release leads
    assert [s.name for s in mext.sources] == ["Japan MEXT", "STI News A"]
    assert mext.reports == 2
    assert all(by_title[title(s)].reports == 1 for s in JAPAN_OTHER)


def test_it_is_the_threshold_that_keeps_two_japanese_stories_of_one_country_apart(
        tmp_path, monkeypatch):
    """Both sides of ``EVENT_SIMILARITY`` in Japanese. The two other stories pass every other
    test (different sources, a day apart, Japan, one area) and share pairs (大学, 研究, 公募), so
    only the threshold keeps them apart: their similarity is about 0.11, and below it they are
    taken for one event. The announcement's two reports, about 0.38, part above it."""
    store = build(tmp_path / "s.db", MEXT_QUANTUM + JAPAN_OTHER)
    assert sorted(s.reports for s in stories_of(store)) == [1, 1, 2]
    monkeypatch.setattr(events, "EVENT_SIMILARITY", 0.09)
    assert sorted(s.reports for s in stories_of(store)) == [2, 2]
    monkeypatch.setattr(events, "EVENT_SIMILARITY", 0.40)
    assert sorted(s.reports for s in stories_of(store)) == [1, 1, 1, 1]


def test_two_chinese_reports_of_one_announcement_are_one_story_and_other_news_is_not(
        tmp_path, monkeypatch):
    """The MOST guide's two reports are about 0.61 alike; the NSFC story, same country and
    area, about 0.05 to either, and joins them only with a threshold below that."""
    store = build(tmp_path / "s.db", MOST_GUIDE + CHINA_OTHER)
    assert sorted((s.title, s.reports) for s in stories_of(store)) == sorted([
        (title(MOST_GUIDE[0]), 2), (title(CHINA_OTHER[0]), 1)])
    monkeypatch.setattr(events, "EVENT_SIMILARITY", 0.04)
    [one] = stories_of(store)
    assert one.reports == 3


def test_a_japanese_release_and_an_english_report_of_it_stay_two_stories(tmp_path):
    """Cross-language grouping is not done (docs/operations.md): the two share no words."""
    english = story("https://news-b.example/quantum-hubs", "2026-11-18T01:00:00Z",
                    source="news-b", title="MEXT selects five universities as quantum hubs",
                    summary="Japan's science ministry chose Tohoku, Tokyo, Osaka and two other "
                            "universities to host quantum technology research hubs, with up to "
                            "500 million yen a year each for ten years.", language="en", **JP)
    store = build(tmp_path / "s.db", [MEXT_QUANTUM[0], english])
    assert [s.reports for s in stories_of(store)] == [1, 1]
