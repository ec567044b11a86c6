//! Product search: hybrid dense + BM25 retrieval fused with RRF in one Qdrant query, with the
//! shop's filters applied inside the vector search (never after it), and "similar products".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Catalog, KEYWORD_VECTOR, PRODUCTS, Product, TEXT_VECTOR, filter_key, from_payload, product_point};
use crate::config::SearchConfig;
use crate::error::{Error, FieldError, Result};
use crate::store::{Condition, Filter, Prefetch, Query, Ranking, Source, Vector, VectorQuery};

/// Filters shared by search, similar-products and listing.
#[derive(Debug, Clone, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductFilter {
    /// Keep products in any of these categories (case-insensitive, exact).
    pub categories: Option<Vec<String>>,
    /// Keep products of any of these brands (case-insensitive, exact).
    pub brands: Option<Vec<String>>,
    /// Leave out products of these brands (case-insensitive, exact).
    pub exclude_brands: Option<Vec<String>>,
    /// Lowest price (inclusive). Products without a price are left out when a bound is set.
    pub price_min: Option<f64>,
    /// Highest price (inclusive).
    pub price_max: Option<f64>,
    /// Keep only products that are (or are not) in stock.
    pub in_stock: Option<bool>,
    /// Leave these product ids out.
    pub exclude_ids: Option<Vec<String>>,
    /// Keep products whose attribute has one of the values (exact; an attribute holding a list
    /// matches when any element does), per attribute name: `{"colour": ["White", "Ivory"]}`.
    /// Names are letters, digits and `_`.
    pub attributes: Option<BTreeMap<String, Vec<String>>>,
    /// Include hidden products (listing for merchandisers; never in search or recommendations).
    #[serde(skip)]
    pub include_hidden: bool,
}

impl ProductFilter {
    /// The filter of query-string parameters, which name one category and one brand at most.
    pub fn from_query(
        category: Option<String>,
        brand: Option<String>,
        price_min: Option<f64>,
        price_max: Option<f64>,
        in_stock: Option<bool>,
    ) -> Self {
        Self {
            categories: category.map(|c| vec![c]),
            brands: brand.map(|b| vec![b]),
            exclude_brands: None,
            price_min,
            price_max,
            in_stock,
            exclude_ids: None,
            attributes: None,
            include_hidden: false,
        }
    }

    /// Check the filter; pointers are prefixed with `at` (e.g. `/filters`).
    pub fn check(&self, at: &str) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (name, v) in [("price_min", self.price_min), ("price_max", self.price_max)] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                errors.push(FieldError::new(format!("{at}/{name}"), "must be a number >= 0"));
            }
        }
        if let (Some(lo), Some(hi)) = (self.price_min, self.price_max)
            && lo > hi
        {
            errors.push(FieldError::new(format!("{at}/price_min"), format!("{lo} is above price_max {hi}")));
        }
        for (name, list) in [
            ("categories", &self.categories),
            ("brands", &self.brands),
            ("exclude_brands", &self.exclude_brands),
            ("exclude_ids", &self.exclude_ids),
        ] {
            if let Some(list) = list {
                if list.len() > 1000 {
                    errors.push(FieldError::new(format!("{at}/{name}"), "must have at most 1000 items"));
                }
                for (i, s) in list.iter().enumerate() {
                    if s.trim().is_empty() || s.chars().count() > 200 {
                        errors.push(FieldError::new(format!("{at}/{name}/{i}"), "must be 1 to 200 characters"));
                    }
                }
            }
        }
        if let Some(attrs) = &self.attributes {
            if attrs.len() > 20 {
                errors.push(FieldError::new(format!("{at}/attributes"), "must have at most 20 names"));
            }
            for (name, values) in attrs {
                let p = format!("{at}/attributes/{}", name.replace('~', "~0").replace('/', "~1"));
                if !is_attribute_name(name) {
                    errors.push(FieldError::new(&p, "an attribute name is 1 to 64 letters, digits or _"));
                }
                if values.is_empty() || values.len() > 100 {
                    errors.push(FieldError::new(&p, "must have 1 to 100 values"));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.is_empty() || v.chars().count() > 200 {
                        errors.push(FieldError::new(format!("{p}/{i}"), "must be 1 to 200 characters"));
                    }
                }
            }
        }
        errors
    }

    /// The store filter, or `None` if nothing is filtered.
    pub fn to_store_filter(&self) -> Option<Filter> {
        let mut f = Filter::default();
        if let Some(c) = self.categories.as_ref().filter(|c| !c.is_empty()) {
            f = f.must(Condition::KeywordAny {
                key: "category_keys".into(),
                values: c.iter().map(|s| filter_key(s)).collect(),
            });
        }
        if let Some(b) = self.brands.as_ref().filter(|b| !b.is_empty()) {
            f = f.must(Condition::KeywordAny {
                key: "brand_key".into(),
                values: b.iter().map(|s| filter_key(s)).collect(),
            });
        }
        if let Some(b) = self.exclude_brands.as_ref().filter(|b| !b.is_empty()) {
            f = f.must_not(Condition::KeywordAny {
                key: "brand_key".into(),
                values: b.iter().map(|s| filter_key(s)).collect(),
            });
        }
        if self.price_min.is_some() || self.price_max.is_some() {
            f = f.must(Condition::Range { key: "price".into(), gte: self.price_min, lte: self.price_max });
        }
        if let Some(s) = self.in_stock {
            f = f.must(Condition::Bool { key: "in_stock".into(), value: s });
        }
        if let Some(ids) = self.exclude_ids.as_ref().filter(|i| !i.is_empty()) {
            f = f.must_not(Condition::HasId(ids.iter().map(|id| product_point(id)).collect()));
        }
        for (name, values) in self.attributes.iter().flatten() {
            // (Checked names only: a key with dots or quotes would be read as a path.)
            if is_attribute_name(name) && !values.is_empty() {
                f = f.must(Condition::KeywordAny { key: format!("attributes.{name}"), values: values.clone() });
            }
        }
        if !self.include_hidden {
            f = f.must_not(Condition::Bool { key: "hidden".into(), value: true });
        }
        (!f.is_empty()).then_some(f)
    }

    /// Whether `p` passes the filter (the same rules as the store filter; for checks and tests).
    pub fn admits(&self, p: &Product) -> bool {
        let any = |want: &Option<Vec<String>>, have: &[String]| match want.as_ref().filter(|w| !w.is_empty()) {
            None => true,
            Some(w) => have.iter().any(|h| w.iter().any(|x| filter_key(x) == filter_key(h))),
        };
        let brand: Vec<String> = p.brand.iter().cloned().collect();
        let price_ok = match (self.price_min, self.price_max, p.price) {
            (None, None, _) => true,
            (_, _, None) => false,
            (lo, hi, Some(x)) => lo.is_none_or(|lo| x >= lo) && hi.is_none_or(|hi| x <= hi),
        };
        any(&self.categories, &p.categories)
            && any(&self.brands, &brand)
            && !(self.exclude_brands.as_ref().is_some_and(|x| !x.is_empty()) && any(&self.exclude_brands, &brand))
            && price_ok
            && self.in_stock.is_none_or(|s| p.in_stock == s)
            && !self.exclude_ids.as_ref().is_some_and(|ids| ids.contains(&p.id))
            && (self.include_hidden || !p.hidden)
            && self.attributes.iter().flatten().all(|(name, values)| {
                let holds = |v: &Value| v.as_str().is_some_and(|s| values.iter().any(|x| x == s));
                match p.attributes.get(name) {
                    Some(Value::Array(items)) => items.iter().any(holds),
                    Some(v) => holds(v),
                    None => false,
                }
            })
    }
}

/// Whether an attribute name can be filtered on: 1 to 64 ASCII letters, digits or `_`.
pub fn is_attribute_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// How search retrieves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    /// Dense and BM25 fused with weighted RRF (default).
    #[default]
    Hybrid,
    /// Dense (embedding) only.
    Semantic,
    /// BM25 only.
    Keyword,
}

/// `POST /v1/search` body.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// What the shopper typed.
    #[schema(min_length = 1, max_length = 1000, pattern = "\\S")]
    pub query: String,
    /// Results to return (default 10).
    #[schema(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// Results to skip (default 0).
    #[schema(maximum = 1000)]
    pub offset: Option<usize>,
    /// Filters applied inside the retrieval.
    pub filters: Option<ProductFilter>,
    /// Retrieval mode.
    pub mode: Option<SearchMode>,
}

/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 1000;
/// Largest offset of a search.
pub const MAX_OFFSET: usize = 1000;

impl SearchRequest {
    /// Check the request against the configured limits.
    pub fn check(&self, config: &SearchConfig) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if self.query.trim().is_empty() {
            errors.push(FieldError::new("/query", "must not be blank"));
        } else if self.query.chars().count() > MAX_QUERY_CHARS {
            errors.push(FieldError::new("/query", format!("must be at most {MAX_QUERY_CHARS} characters")));
        }
        if self.limit.is_some_and(|l| l == 0 || l > config.max_limit) {
            errors.push(FieldError::new("/limit", format!("must be between 1 and {}", config.max_limit)));
        }
        if self.offset.is_some_and(|o| o > MAX_OFFSET) {
            errors.push(FieldError::new("/offset", format!("must be at most {MAX_OFFSET}")));
        }
        if let Some(f) = &self.filters {
            errors.extend(f.check("/filters"));
        }
        errors
    }
}

/// Where similar products may come from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimilarScope {
    /// Products sharing a category with the anchor (substitutes); if they cannot fill the
    /// page, the rest comes from any category (default).
    #[default]
    Category,
    /// Any product, by text similarity alone.
    Any,
}

/// What "similar" means.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SimilarMode {
    /// Substitutes: similar product text.
    #[default]
    Content,
    /// Complements: most often bought together.
    CoPurchase,
}

/// `GET /v1/products/{id}/similar` parameters.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SimilarRequest {
    /// Results to return (default 10; at most `[search] max_limit`, 100 by default).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
    /// Where results may come from (default: the anchor's categories first).
    #[param(inline)]
    pub scope: Option<SimilarScope>,
    /// `content` (default): similar text; `co_purchase`: frequently bought together.
    #[param(inline)]
    pub mode: Option<SimilarMode>,
    /// Keep products in this category.
    pub category: Option<String>,
    /// Keep products of this brand.
    pub brand: Option<String>,
    /// Lowest price.
    pub price_min: Option<f64>,
    /// Highest price.
    pub price_max: Option<f64>,
    /// Only in-stock (or out-of-stock) products.
    pub in_stock: Option<bool>,
}

impl SimilarRequest {
    /// The filter these parameters describe.
    pub fn filter(&self) -> ProductFilter {
        ProductFilter::from_query(
            self.category.clone(),
            self.brand.clone(),
            self.price_min,
            self.price_max,
            self.in_stock,
        )
    }
}

/// One result.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    /// The product.
    pub product: Product,
    /// Score: fused RRF score for hybrid, similarity for semantic, BM25 for keyword.
    pub score: f32,
}

impl Catalog {
    /// Search the catalog. The dense and keyword sources, the fusion and the filters run as ONE
    /// store query; filters are applied inside each source's vector search.
    pub async fn search(&self, request: &SearchRequest, config: &SearchConfig) -> Result<Vec<SearchHit>> {
        let errors = request.check(config);
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let limit = request.limit.unwrap_or(10);
        let offset = request.offset.unwrap_or(0);
        let filter = request.filters.as_ref().and_then(ProductFilter::to_store_filter);
        let mode = request.mode.unwrap_or_default();
        let text = request.query.trim();
        let keywords = self.keywords.query(text);
        let dense = || async {
            let v = self.embedder.embed_query(text).await?;
            Ok::<_, Error>(VectorQuery::Nearest { using: TEXT_VECTOR.into(), vector: Vector::Dense(v) })
        };
        let keyword = VectorQuery::Nearest { using: KEYWORD_VECTOR.into(), vector: keywords.clone() };
        let query = match mode {
            SearchMode::Semantic => Query {
                prefetch: vec![],
                ranking: Ranking::Vector(dense().await?),
                filter,
                limit,
                offset,
                with_vectors: vec![],
            },
            SearchMode::Keyword => {
                if keywords.is_empty_sparse() {
                    return Ok(Vec::new());
                }
                Query {
                    prefetch: vec![],
                    ranking: Ranking::Vector(keyword),
                    filter,
                    limit,
                    offset,
                    with_vectors: vec![],
                }
            }
            SearchMode::Hybrid => {
                let candidates = config.candidates.max(limit + offset);
                let mut prefetch =
                    vec![Prefetch { source: Source::Vector(dense().await?), filter: None, limit: candidates }];
                let mut weights = vec![config.dense_weight];
                if !keywords.is_empty_sparse() {
                    prefetch.push(Prefetch { source: Source::Vector(keyword), filter: None, limit: candidates });
                    weights.push(config.keyword_weight);
                }
                Query {
                    prefetch,
                    ranking: Ranking::Rrf { k: 60, weights: Some(weights) },
                    filter,
                    limit,
                    offset,
                    with_vectors: vec![],
                }
            }
        };
        let hits = self.store.query(PRODUCTS, query).await?;
        let mut hits: Vec<SearchHit> = hits
            .into_iter()
            .map(|h| Ok(SearchHit { product: from_payload(h.payload)?, score: h.score }))
            .collect::<Result<_>>()?;
        // Fused scores tie often (rank 1 + rank 2 = rank 2 + rank 1); the engine orders ties
        // arbitrarily. Ties go by product id, so the same query gives the same page.
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.product.id.cmp(&b.product.id)));
        Ok(hits)
    }

    /// Products most similar in text to product `id` (itself excluded), filtered.
    pub async fn similar(&self, id: &str, request: &SimilarRequest, config: &SearchConfig) -> Result<Vec<SearchHit>> {
        let limit = request.limit.unwrap_or(10);
        let mut errors = Vec::new();
        if limit == 0 || limit > config.max_limit {
            errors.push(FieldError::new("/limit", format!("must be between 1 and {}", config.max_limit)));
        }
        let product_filter = request.filter();
        errors.extend(product_filter.check(""));
        if !errors.is_empty() {
            return Err(Error::Invalid(errors));
        }
        let point = product_point(id);
        let record = self
            .store
            .retrieve(PRODUCTS, vec![point], vec![TEXT_VECTOR.into()])
            .await?
            .pop()
            .ok_or_else(|| Error::not_found("product", id))?;
        let Some(vector) = record.vectors.get(TEXT_VECTOR).cloned() else {
            return Err(Error::Store(format!("product '{id}' has no text vector")));
        };
        let anchor_categories: Vec<String> = record
            .payload
            .get("category_keys")
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let base = product_filter.to_store_filter().unwrap_or_default().must_not(Condition::HasId(vec![point]));
        let nearest = |filter: Filter, limit: usize| Query {
            prefetch: vec![],
            ranking: Ranking::Vector(VectorQuery::Nearest { using: TEXT_VECTOR.into(), vector: vector.clone() }),
            filter: Some(filter),
            limit,
            offset: 0,
            with_vectors: vec![],
        };
        let mut hits = Vec::new();
        if request.scope.unwrap_or_default() == SimilarScope::Category && !anchor_categories.is_empty() {
            let same =
                base.clone().must(Condition::KeywordAny { key: "category_keys".into(), values: anchor_categories });
            hits = self.store.query(PRODUCTS, nearest(same, limit)).await?;
        }
        if hits.len() < limit {
            // Fill (or, for scope=any, make) the list from every category.
            let seen: Vec<uuid::Uuid> = hits.iter().map(|h| h.id).collect();
            let rest = if seen.is_empty() { base } else { base.must_not(Condition::HasId(seen)) };
            hits.extend(self.store.query(PRODUCTS, nearest(rest, limit - hits.len())).await?);
        }
        hits.into_iter().map(|h| Ok(SearchHit { product: from_payload(h.payload)?, score: h.score })).collect()
    }
}
