package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyward/keyward/broker"
)

// Exchanger runs RFC 8693 token exchanges at the broker as the public client
// ExchangeClientID, presenting one CI token (Env.MintCIToken) each time.
type Exchanger struct {
	tokenURL string
	client   *http.Client
	body     string // the form, encoded once
}

// NewExchanger exchanges subjectToken for an access token for
// ExchangeAudience.
func NewExchanger(brokerURL string, transport http.RoundTripper, subjectToken string) *Exchanger {
	form := url.Values{
		"grant_type":         {broker.GrantTypeTokenExchange},
		"client_id":          {ExchangeClientID},
		"subject_token":      {subjectToken},
		"subject_token_type": {broker.TokenTypeJWT},
		"audience":           {ExchangeAudience},
	}
	return &Exchanger{
		tokenURL: brokerURL + "/token",
		client:   &http.Client{Transport: transport, Timeout: 30 * time.Second},
		body:     form.Encode(),
	}
}

// Exchange runs one exchange and checks that the answer carries an access
// token of the RFC 8693 type.
func (x *Exchanger) Exchange(ctx context.Context) error {
	_, err := x.exchange(ctx)
	return err
}

func (x *Exchanger) exchange(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.tokenURL, strings.NewReader(x.body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := x.client.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("exchange: status %d: %.200s", resp.StatusCode, body)
	}
	var tok struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
	}
	if err := json.Unmarshal(body, &tok); err != nil {
		return "", fmt.Errorf("exchange: decode: %w", err)
	}
	if tok.AccessToken == "" || tok.IssuedTokenType != broker.TokenTypeAccessToken {
		return "", errors.New("exchange: response lacks access_token or issued_token_type")
	}
	return tok.AccessToken, nil
}
